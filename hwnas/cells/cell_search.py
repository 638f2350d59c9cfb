"""The loop every cell-search method shares: data split, progress, per-epoch checkpoint + resume, outputs.

A method (``darts``, ``dots``, ``eoinas``, ``msdarts``) subclasses :class:`CellSearchMethod`: it owns
the architecture parameters and their optimizer, decides how one search step updates the network
weights and the architecture, and derives the genotype. The loop owns the weight optimizer, the
cosine learning-rate schedule, the seeds and the files.

A run directory holds ``config.json``, ``checkpoint.pt`` (atomic, rewritten after every epoch),
``history.json`` (one entry per epoch), ``genotype.json`` and ``genotype.png``. Re-running the same
command after a kill resumes from the last finished epoch; every epoch reseeds torch from
``(seed, epoch)``, so a resumed run follows the same data order and random draws as an unbroken one.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deploy.fileio import atomic_path, atomic_write_json, check_identity
from hwnas.cells.darts_space import NONE_INDEX, CellMix, SearchNetwork, node_edges, num_edges
from hwnas.errors import CheckpointError, HwnasError

METHODS = {
    "darts": "hwnas.cells.darts:Darts",
    "dots": "hwnas.cells.dots:Dots",
    "eoinas": "hwnas.cells.eoinas:EoiNAS",
    "msdarts": "hwnas.cells.msdarts:MSDarts",
}


@dataclass
class CellSearchConfig:
    method: str
    data: str = "digits"
    image_size: int | None = None  # None: the data set's default (digits 16, CIFAR 32)
    epochs: int = 10
    batch_size: int = 64
    channels: int = 8
    layers: int = 5
    steps: int = 4
    seed: int = 0
    lr: float = 0.025  # DARTS weight optimizer: SGD, cosine to lr_min
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4  # DARTS/EoiNAS: Adam 3e-4, betas (0.5, 0.999), wd 1e-3
    arch_weight_decay: float = 1e-3
    max_samples: int | None = None  # cap on each search half (train / val), for quick runs and tests
    options: dict[str, Any] = field(default_factory=dict)  # method-specific, see each method's OPTIONS
    device: str = "cpu"  # where to run; not part of a run's identity (a run may resume elsewhere)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CellSearchMethod:
    """Base of the four methods. Architecture tensors are plain ``nn.Parameter`` s owned here."""

    name = ""
    OPTIONS: dict[str, Any] = {}

    def __init__(self, net: SearchNetwork, cfg: CellSearchConfig, steps_per_epoch: int):
        unknown = sorted(set(cfg.options) - set(self.OPTIONS))
        if unknown:
            raise HwnasError(f"unknown option(s) {unknown} for method {self.name}; allowed: {sorted(self.OPTIONS) or 'none'}")
        self.opt = {**self.OPTIONS, **cfg.options}
        self.net = net
        self.cfg = cfg
        self.steps_per_epoch = steps_per_epoch
        self.num_edges = num_edges(cfg.steps)
        self.device = next(net.parameters()).device
        self.epoch = 0

    # -- hooks -------------------------------------------------------------------------------
    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def step(self, train_batch, val_batch, w_optimizer) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {}

    def genotype(self):
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- shared pieces -----------------------------------------------------------------------
    def weight_step(self, w_optimizer, x, y, normal: CellMix, reduce: CellMix) -> tuple[float, float]:
        """One SGD step of the network weights under the given (detached) mixes."""
        w_optimizer.zero_grad(set_to_none=True)
        logits = self.net(x, normal, reduce)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        w_optimizer.step()
        return loss.item(), (logits.argmax(1) == y).float().mean().item()


def derive_top2(op_weights: torch.Tensor, steps: int) -> tuple[tuple[tuple[str, int], ...], ...]:
    """DARTS derivation: per node keep the 2 incoming edges with the largest non-``none`` op weight,
    each with its strongest non-``none`` op."""
    from hwnas.cells.darts_space import PRIMITIVES

    w = op_weights.detach().clone()
    w[:, NONE_INDEX] = -math.inf
    nodes = []
    for node in range(steps):
        edges = node_edges(node)
        strength = w[edges].max(dim=1).values
        best = sorted(range(len(edges)), key=lambda s: (-strength[s].item(), s))[:2]
        nodes.append(tuple((PRIMITIVES[int(w[edges[s]].argmax())], s) for s in sorted(best)))
    return tuple(nodes)


def create_method(name: str, net: SearchNetwork, cfg: CellSearchConfig, steps_per_epoch: int) -> CellSearchMethod:
    if name not in METHODS:
        raise HwnasError(f"unknown cell-search method {name!r}; allowed: {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)(net, cfg, steps_per_epoch)


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@dataclass
class CellSearchResult:
    genotype: Any
    out_dir: Path
    history: list[dict]
    seconds: float


def run_search(cfg: CellSearchConfig, out_dir: str | Path, progress: bool = True) -> CellSearchResult:
    from tqdm import tqdm

    from hwnas.cells.classification_data import batches, load_data, search_split
    from hwnas.cells.genotype import plot_genotype

    if cfg.method not in METHODS:
        raise HwnasError(f"unknown cell-search method {cfg.method!r}; allowed: {', '.join(METHODS)}")
    for name in ("epochs", "batch_size", "channels", "layers", "steps"):
        if getattr(cfg, name) < 1:
            raise HwnasError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(cfg.data, cfg.image_size)
    (tx, ty), (vx, vy) = search_split(data, cfg.seed)
    if cfg.max_samples:
        tx, ty, vx, vy = tx[: cfg.max_samples], ty[: cfg.max_samples], vx[: cfg.max_samples], vy[: cfg.max_samples]
    steps_per_epoch = math.ceil(len(ty) / cfg.batch_size)

    from hwnas.devices import resolve_device

    device = resolve_device(cfg.device)
    tx, ty, vx, vy = (t.to(device) for t in (tx, ty, vx, vy))
    torch.manual_seed(cfg.seed)
    net = SearchNetwork(cfg.channels, data.num_classes, cfg.layers, cfg.steps).to(device)
    method = create_method(cfg.method, net, cfg, steps_per_epoch)
    w_opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=cfg.epochs, eta_min=cfg.lr_min)

    ckpt_path = out / "checkpoint.pt"
    config = {k: v for k, v in cfg.to_dict().items() if k != "device"}
    history: list[dict] = []
    start = 0
    seconds = 0.0
    if ckpt_path.exists():
        from hwnas.checkpoint import torch_load_safely

        # a truncated, foreign or unsafe file is refused in one line and kept for inspection
        state = torch_load_safely(ckpt_path, map_location=device, what="cell-search checkpoint")
        if not isinstance(state, dict):
            raise CheckpointError(f"{ckpt_path}: not a cell-search checkpoint; use another --out or move it away")
        check_identity(state.get("config"), json.loads(json.dumps(config)), f"cell-search checkpoint {ckpt_path}")
        net.load_state_dict(state["net"])
        w_opt.load_state_dict(state["w_optimizer"])
        sched.load_state_dict(state["scheduler"])
        method.load_state_dict(state["method"])
        history = list(state["history"])
        start = int(state["epoch"])
        seconds = float(state.get("seconds", 0.0))
    atomic_write_json(out / "config.json", config)

    bar = tqdm(total=cfg.epochs * steps_per_epoch, initial=start * steps_per_epoch, disable=not progress,
               desc=f"cells {cfg.method}", unit="step")
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        g_train = torch.Generator().manual_seed(cfg.seed * 100_003 + 2 * epoch + 1)
        g_val = torch.Generator().manual_seed(cfg.seed * 100_003 + 2 * epoch + 2)
        net.train()
        method.begin_epoch(epoch)
        sums: dict[str, float] = {}
        n = 0
        val_iter = batches(vx, vy, cfg.batch_size, g_val)
        for train_batch in batches(tx, ty, cfg.batch_size, g_train):
            val_batch = next(val_iter, None)
            if val_batch is None:  # val half one batch shorter: start it again
                val_iter = batches(vx, vy, cfg.batch_size, g_val)
                val_batch = next(val_iter)
            logs = method.step(train_batch, val_batch, w_opt)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            bar.update(1)
            bar.set_postfix({k: f"{v / n:.3f}" for k, v in sums.items()})
        sched.step()
        entry = {"epoch": epoch + 1, **{k: v / max(n, 1) for k, v in sums.items()}, **method.end_epoch(epoch)}
        seconds += time.perf_counter() - t0
        entry["seconds"] = seconds
        history.append(entry)
        _atomic_save({
            "config": config, "epoch": epoch + 1, "net": net.state_dict(), "w_optimizer": w_opt.state_dict(),
            "scheduler": sched.state_dict(), "method": method.state_dict(), "history": history, "seconds": seconds,
        }, ckpt_path)
        atomic_write_json(out / "history.json", history)
    bar.close()

    genotype = method.genotype()
    meta = {"method": cfg.method, "data": cfg.data, "epochs": cfg.epochs, "seed": cfg.seed,
            "search_seconds": round(seconds, 2), "options": method.opt}
    genotype = type(genotype)(genotype.normal, genotype.reduce, meta)
    genotype.save(out / "genotype.json")
    plot_genotype(genotype, out / "genotype.png", title=f"{cfg.method} (seed {cfg.seed}, {cfg.data})")
    return CellSearchResult(genotype, out, history, seconds)
