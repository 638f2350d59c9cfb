"""Accuracy predictors trained online on the candidates a search has already evaluated.

Evaluating a candidate (BN recalibration + validation) is the whole cost of a search. OFA
(Cai et al., 2020) searches with an accuracy predictor: a small MLP on a one-hot architecture
encoding, trained on measured subnets. Here a predictor is refitted every iteration on every
evaluated candidate (architecture encoding + its LUT latency -> fitness) and used to decide which
of many bred offspring get a real evaluation (:func:`hwnas.search.evolution` ``predictor=``).

Five regressors behind one interface (``fit(X, y)``, ``predict(X)``), all deterministic for a seed:

- ``ridge`` — linear baseline on standardised features (scikit-learn ``Ridge``);
- ``gbt``  — gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``, no early
  stopping, so no random validation split);
- ``mlp``  — OFA-style MLP in torch (2 hidden layers, ReLU, MSE on standardised targets,
  full-batch Adam; one torch thread while fitting so the result does not depend on the thread count);
- ``gp``   — Gaussian-process regression (scikit-learn ``GaussianProcessRegressor``, RBF + white-noise
  kernel on standardised features, hyper-parameters by marginal likelihood from one fixed start): with
  a hundred noisy fitness values the noise level is learnt rather than fitted into the ranking;
- ``ensemble`` — the mean of ``gp``, ``gbt`` and ``mlp`` (each on standardised targets): three
  models of different biases, whose errors on a hundred noisy values are partly independent.

Which one is the default was decided by measurement (``bench/predictor_search.py``), not here.

The encoding (:class:`ArchEncoder`) is built from :class:`~hwnas.search.sampling.Genome`'s fields:
an integer field (widths, depths) gives its normalised rank among the choices plus a one-hot when it
has more than two choices; a set field (SMSU kernel sets, head input levels) gives a multi-hot over
its elements plus its largest element's rank (an SMSU's deploy form is its largest kernel). Kernel
fields of layers beyond a stage's depth are zero (they do not exist). The LUT latency, scaled to the
searched range, is the last feature: free to compute and the strongest single signal.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from hwnas.arch import Arch
from hwnas.search.errors import SearchError
from hwnas.search.sampling import Genome

PREDICTORS = ("none", "mlp", "gbt", "ridge", "gp", "ensemble")


def check_predictor(name: str) -> str:
    if name not in PREDICTORS:
        raise SearchError(f"predictor {name!r} unknown; allowed: {', '.join(PREDICTORS)}")
    return name


class ArchEncoder:
    """Architecture (+ latency) -> fixed-length float vector (see the module docstring)."""

    def __init__(self, genome: Genome, lat_min_ms: float, lat_max_ms: float):
        self.genome = genome
        self.lat_min_ms = lat_min_ms
        self.lat_span_ms = max(lat_max_ms - lat_min_ms, 1e-12)
        self._plan: list[tuple] = []
        size = 0
        for name, choices in genome.choices.items():
            if isinstance(choices[0], tuple):
                elements = sorted({e for c in choices for e in c})
                self._plan.append((name, "set", elements, size))
                size += len(elements) + 1
            else:
                onehot = len(choices) > 2
                self._plan.append((name, "int", list(choices), size))
                size += 1 + (len(choices) if onehot else 0)
        self.size = size + 1  # + latency

    def _active(self, values: dict, name) -> bool:
        return not (name[0] == "stage" and name[2] == "kernels" and name[3] > values[("stage", name[1], "depth")])

    def encode(self, arch: Arch, latency_ms: float) -> np.ndarray:
        values = self.genome.from_arch(arch)
        x = np.zeros(self.size, dtype=np.float64)
        for name, kind, choices, at in self._plan:
            if not self._active(values, name):
                continue
            v = values[name]
            if kind == "set":
                for e in v:
                    x[at + choices.index(e)] = 1.0
                x[at + len(choices)] = (choices.index(max(v)) + 1) / len(choices)
            else:
                i = choices.index(v)
                x[at] = i / max(1, len(choices) - 1)
                if len(choices) > 2:
                    x[at + 1 + i] = 1.0
        x[-1] = (latency_ms - self.lat_min_ms) / self.lat_span_ms
        return x

    def encode_many(self, items: Sequence[tuple[Arch, float]]) -> np.ndarray:
        return np.stack([self.encode(a, lat) for a, lat in items]) if items else np.zeros((0, self.size))


class _Standardised:
    """Targets standardised before fitting, so one set of hyper-parameters fits any metric scale."""

    def _targets(self, y: np.ndarray) -> np.ndarray:
        self.y_mean = float(np.mean(y))
        self.y_std = float(np.std(y)) or 1.0
        return (y - self.y_mean) / self.y_std

    def _untarget(self, z: np.ndarray) -> np.ndarray:
        return z * self.y_std + self.y_mean


class RidgePredictor(_Standardised):
    def __init__(self, seed: int = 0, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray) -> RidgePredictor:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(X, self._targets(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._untarget(self.model.predict(X))


class GbtPredictor(_Standardised):
    def __init__(self, seed: int = 0, max_iter: int = 150, learning_rate: float = 0.05, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 5):
        self.seed = seed
        self.kw = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                       min_samples_leaf=min_samples_leaf)

    def fit(self, X: np.ndarray, y: np.ndarray) -> GbtPredictor:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        self.model = HistGradientBoostingRegressor(early_stopping=False, random_state=self.seed, **self.kw)
        with threadpool_limits(1):  # a few hundred rows: threads only add contention (and order effects)
            self.model.fit(X, self._targets(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self._untarget(self.model.predict(X))


class MlpPredictor(_Standardised):
    """OFA's predictor shape, smaller (OFA: 3 x 400 units on ~16 k samples; here a few hundred)."""

    def __init__(self, seed: int = 0, hidden: int = 128, steps: int = 400, lr: float = 3e-3, weight_decay: float = 1e-4):
        self.seed = seed
        self.hidden = hidden
        self.steps = steps
        self.lr = lr
        self.weight_decay = weight_decay

    def fit(self, X: np.ndarray, y: np.ndarray) -> MlpPredictor:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # same sums in the same order whatever the machine's thread setting
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.x_mean = X.mean(axis=0)
                self.x_std = X.std(axis=0) + 1e-6
                xt = torch.tensor((X - self.x_mean) / self.x_std, dtype=torch.float32)
                yt = torch.tensor(self._targets(y), dtype=torch.float32).unsqueeze(1)
                h = self.hidden
                self.net = torch.nn.Sequential(
                    torch.nn.Linear(X.shape[1], h), torch.nn.ReLU(), torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 1)
                )
                opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                for _ in range(self.steps):  # full batch: no shuffling, nothing random after the init
                    opt.zero_grad()
                    loss = torch.nn.functional.mse_loss(self.net(xt), yt)
                    loss.backward()
                    opt.step()
                self.net.eval()
        finally:
            torch.set_num_threads(threads)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            z = self.net(torch.tensor((X - self.x_mean) / self.x_std, dtype=torch.float32)).squeeze(1).numpy()
        return self._untarget(z.astype(np.float64))


class GpPredictor(_Standardised):
    """GP regression; ``length_scale`` starts near the distance between two standardised encodings."""

    def __init__(self, seed: int = 0, length_scale: float = 10.0, noise: float = 0.5):
        self.length_scale = length_scale
        self.noise = noise

    def fit(self, X: np.ndarray, y: np.ndarray) -> GpPredictor:
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        self.scaler = StandardScaler().fit(X)
        kernel = ConstantKernel(1.0) * RBF(length_scale=self.length_scale) + WhiteKernel(noise_level=self.noise)
        # no optimizer restarts: one deterministic start, nothing random
        self.model = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=0)
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # a bound reached is a valid (flat) fit
            self.model.fit(self.scaler.transform(X), self._targets(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self._untarget(self.model.predict(self.scaler.transform(X)))


class EnsemblePredictor(_Standardised):
    """The mean of ``gp``, ``gbt`` and ``mlp`` fitted on the same standardised targets."""

    MEMBERS = ("gp", "gbt", "mlp")

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> EnsemblePredictor:
        z = self._targets(y)
        self.members = [make_predictor(name, seed=self.seed).fit(X, z) for name in self.MEMBERS]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._untarget(np.mean([m.predict(X) for m in self.members], axis=0))


def make_predictor(name: str, seed: int = 0):
    """A fresh, unfitted predictor by name (``mlp``, ``gbt``, ``ridge``, ``gp``, ``ensemble``)."""
    check_predictor(name)
    if name == "none":
        raise SearchError("predictor 'none' has no model")
    return {"mlp": MlpPredictor, "gbt": GbtPredictor, "ridge": RidgePredictor, "gp": GpPredictor,
            "ensemble": EnsemblePredictor}[name](seed=seed)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two score lists (nan when either is constant or shorter than 2)."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return math.nan
    return float(kendalltau(a, b).statistic)


__all__ = ["PREDICTORS", "ArchEncoder", "EnsemblePredictor", "GbtPredictor", "GpPredictor", "MlpPredictor", "RidgePredictor", "check_predictor",
           "kendall_tau", "make_predictor"]
