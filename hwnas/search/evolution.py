"""Latency-group-sampling (LGS) evolutionary search — iNAS Algorithm 1 (thesis §3.2.3, fig. 3.7).

The engine works on two plain callables, ``latency_ms(arch) -> float`` (a LUT sum) and
``fitness(arch) -> float`` (higher is better, e.g. max-F of the subnet inheriting supernet
weights), so it is tested with synthetic ones and wired to the real LUT/supernet by the CLI.

Algorithm 1 as implemented (line numbers of the thesis' listing):

1-3. ``LAT_min``/``LAT_max`` = latency of ``space.smallest/largest`` at the search resolution
     (``LAT_max`` lowered to ``max_latency_ms`` when given); the range is split into ``G`` equal groups.
4-6. ``N/G`` architectures are drawn inside each group (:class:`~hwnas.search.sampling.LatencyGroupSampler`)
     and evaluated. With ``sampler="uniform"`` the initial population is layer-wise uniform and
     selection treats the population as a single group (the baseline of thesis fig. 3.10).
7-9. Each iteration, every group ``i`` contributes ``k/G`` parents: its successive Pareto fronts
     until ``k/G`` are taken, the last front cut by crowding distance (NSGA-II). A group with fewer
     members than its share (or none) leaves its places to be filled by cycling through the chosen
     parents, so every iteration breeds ``k`` children.
11-12. Each child: with probability ``p_c`` crossover with another parent of ``S`` (each backbone
     stage, the stem, and each transport / decoder level taken whole from either parent), then every
     field — depth included, unlike the authors' code — re-sampled with probability ``p_m``. A child
     that is invalid, over the latency cap, or already evaluated is bred again (at most
     ``max_attempts`` times; then it is dropped), so every evaluation is spent on a new candidate.
With ``predictor`` (``mlp`` | ``gbt`` | ``ridge``, :mod:`hwnas.search.predictor`; not in the thesis,
as in OFA), line 11 breeds ``screen_factor`` x as many children, an accuracy predictor fitted on every
evaluated candidate ranks them, and as many as plain LGS would evaluate are kept: per latency group,
the best-ranked (by predicted fitness above the evaluated front at their latency) plus an ``explore``
share drawn at random (:meth:`EvolutionSearch._screen`). The initial population is screened the same
way: the first ``1 - screen_init`` of it is drawn and evaluated as lines 4-6 say, the predictor is
fitted on those, and the rest is picked from ``screen_factor`` x as many further draws. The number
of true evaluations is unchanged.
13-15. Children are evaluated and joined to ``P``. ``population_update="front"`` then keeps only the
     Pareto front of ``P`` (the thesis' line 15); ``"all"`` keeps the whole population (the authors'
     public code). The result is the Pareto front of every evaluated architecture.

Resumable after kill -9: the fitness cache is appended to ``fitness_cache.jsonl`` as each
candidate is evaluated (a ``deploy.fileio.Journal``: identity header, one writer at a time, a line cut
by the kill skipped with a warning and evaluated again), and ``search_state.json`` (population + cache + history) is replaced
atomically after every finished iteration. A restart reloads the last finished iteration and
replays the unfinished one with the same random stream (each iteration's generator is seeded by
``(seed, iteration)``), so candidates already evaluated are taken from the cache, not recomputed.
The predictor is refitted from the cache as it stood at the start of the iteration, with a seed
fixed by ``(seed, iteration)``, so a replayed iteration screens the same offspring.

``fitness`` may offer ``map(archs)`` (values in input order): a process pool
(:class:`~hwnas.search.fitness.PoolFitness`) or the ranks of a torchrun job
(:class:`~hwnas.search.distributed.DistributedFitness`).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hwnas.arch import Arch
from hwnas.search.errors import SearchError
from hwnas.search.pareto import hypervolume_2d, pareto_front, select_by_fronts
from hwnas.search.predictor import PREDICTORS, ArchEncoder, kendall_tau, make_predictor
from hwnas.search.sampling import FieldName, Genome, LatencyGroupSampler, group_edges, group_of, uniform_population
from hwnas.space import SearchSpace

STATE_FILE = "search_state.json"
CACHE_FILE = "fitness_cache.jsonl"
STATE_VERSION = 1
MIN_FIT = 10  # evaluated candidates a predictor is fitted on before it screens anything


@dataclass
class SearchConfig:
    """Algorithm 1's inputs. Defaults are the thesis' (§3.3.1.2): N=1000, G=10, k=100, p=0.2, 20 iterations."""

    resolution: int
    population: int = 1000
    groups: int = 10
    keep: int = 100
    crossover_prob: float = 0.2
    mutation_prob: float = 0.2
    iterations: int = 20
    seed: int = 0
    sampler: str = "lgs"  # "lgs" | "uniform"
    population_update: str = "front"  # "front" (thesis line 15) | "all" (authors' code)
    max_latency_ms: float | None = None
    strata: int = 10  # stratified targets per group when drawing the initial population
    max_attempts: int = 20  # redraws of one sample / one child before a fallback
    predictor: str = "none"  # "none" | "mlp" | "gbt" | "ridge": pre-screen offspring (hwnas.search.predictor)
    screen_factor: int = 5  # with a predictor: offspring bred per offspring evaluated
    explore: float = 0.2  # with a predictor: share of each group's evaluations given to random offspring
    # with a predictor: share of the initial population picked by it (fitted on the rest) from
    # screen_factor x as many samples; small searches spend most evaluations there (see run()).
    # 0 by default: 0.5 did not help on fresh seeds 3-5 (bench/predictor_search.py, fourteenth session:
    # hypervolume over LGS gp 1.055 vs 1.047 unscreened, ensemble 1.048 vs 1.047, means)
    screen_init: float = 0.0

    def check(self) -> None:
        def need(ok: bool, text: str) -> None:
            if not ok:
                raise SearchError(text)

        need(self.sampler in ("lgs", "uniform"), f"sampler {self.sampler!r} unknown; allowed: lgs, uniform")
        need(self.population_update in ("front", "all"), f"population_update {self.population_update!r} unknown; allowed: front, all")
        need(self.population >= 1, f"population must be >= 1, got {self.population}")
        need(self.groups >= 1, f"groups must be >= 1, got {self.groups}")
        need(self.population >= self.groups, f"population ({self.population}) must be >= groups ({self.groups})")
        need(self.keep >= 1, f"keep (k) must be >= 1, got {self.keep}")
        need(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        for name in ("crossover_prob", "mutation_prob"):
            p = getattr(self, name)
            need(0.0 <= p <= 1.0, f"{name} must be in [0, 1], got {p}")
        need(self.max_attempts >= 1 and self.strata >= 1, "max_attempts and strata must be >= 1")
        need(self.predictor in PREDICTORS, f"predictor {self.predictor!r} unknown; allowed: {', '.join(PREDICTORS)}")
        need(self.screen_factor >= 1, f"screen_factor must be >= 1, got {self.screen_factor}")
        need(0.0 <= self.explore <= 1.0, f"explore must be in [0, 1], got {self.explore}")
        need(0.0 <= self.screen_init < 1.0, f"screen_init must be in [0, 1), got {self.screen_init}")


@dataclass
class Candidate:
    arch: str  # compact string (the cache key)
    latency_ms: float
    fitness: float
    index: int  # evaluation order (0-based): compares searches at equal evaluation budgets
    iteration: int  # 0 = initial population
    origin: str  # "init" | "offspring"


@dataclass
class SearchResult:
    config: SearchConfig
    lat_min_ms: float
    lat_max_ms: float  # upper end of the searched range (cap applied)
    candidates: list[Candidate]  # every evaluated architecture, in evaluation order
    population: list[str]
    pareto: list[Candidate]  # non-dominated evaluated architectures, by increasing latency
    history: list[dict[str, Any]] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)
    fitness_calls: int = 0  # evaluations computed by this process (the rest came from the cache)
    predicted: int = 0  # offspring scored by the predictor (evaluated or not), over all iterations


def normalized_hypervolume(cands: list[Candidate], lat_min_ms: float, lat_max_ms: float, fitness_ref: float = 0.0) -> float:
    """Hypervolume in (latency scaled to [0, 1] over the searched range, fitness) with reference
    (1, ``fitness_ref``); comparable between searches over the same range."""
    span = max(lat_max_ms - lat_min_ms, 1e-12)
    pts = [((c.latency_ms - lat_min_ms) / span, c.fitness) for c in cands]
    return hypervolume_2d(pts, (1.0, fitness_ref))


from deploy.fileio import Journal, atomic_write_text, check_identity  # noqa: E402  (atomic_write_text: bench uses it from here)


def latency_range(space: SearchSpace, latency_ms: Callable[[Arch], float], resolution: int, max_latency_ms: float | None = None) -> tuple[float, float]:
    """``(LAT_min, min(LAT_max, cap))``; refuses a cap below ``LAT_min`` naming the feasible range."""
    lat_min = float(latency_ms(space.smallest(resolution)))
    lat_max = float(latency_ms(space.largest(resolution)))
    if max_latency_ms is not None:
        if max_latency_ms < lat_min:
            raise SearchError(
                f"--max-latency-ms {max_latency_ms:g} is below the fastest model of {space.name} at "
                f"{resolution}px; feasible range: {lat_min:.3f}-{lat_max:.3f} ms"
            )
        lat_max = min(lat_max, float(max_latency_ms))
    return lat_min, lat_max


class EvolutionSearch:
    """One search run. ``out_dir`` (optional) makes it checkpointed and resumable.

    ``fingerprint`` names what the fitness and latency depend on (supernet, LUT, data, metric...);
    a resume with a different fingerprint or config is refused rather than mixing caches.
    """

    def __init__(
        self,
        space: SearchSpace,
        latency_ms: Callable[[Arch], float],
        fitness: Callable[[Arch], float],
        config: SearchConfig,
        out_dir: str | Path | None = None,
        fingerprint: dict[str, Any] | None = None,
        progress: bool = True,
    ):
        config.check()
        if config.resolution not in space.resolutions:
            raise SearchError(f"resolution {config.resolution} not in space {space.name}; allowed: {list(space.resolutions)}")
        self.space = space
        self.latency_fn = latency_ms
        self.fitness_fn = fitness
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.fingerprint = dict(fingerprint or {})
        self.progress = progress
        self.genome = Genome(space, config.resolution)
        self.lat_min, self.lat_max = latency_range(space, latency_ms, config.resolution, config.max_latency_ms)
        groups = config.groups if config.sampler == "lgs" else 1
        self.edges = group_edges(self.lat_min, self.lat_max, groups)
        self.cache: dict[str, Candidate] = {}
        self.pending: dict[str, tuple[float, float]] = {}  # evaluated by an interrupted run, not yet replayed
        self.population: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.iteration_done = -1  # -1: initial population not finished
        self.fitness_calls = 0
        self._journal: Journal | None = None
        self._encoder = ArchEncoder(self.genome, self.lat_min, self.lat_max)
        self._encodings: dict[str, object] = {}

    # -------------------------------------------------------------------------- persistence
    def _identity(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg.pop("iterations")  # a finished search may be extended by more iterations
        if cfg["predictor"] == "none":  # unused settings: runs from before the predictor still resume
            for key in ("predictor", "screen_factor", "explore", "screen_init"):
                cfg.pop(key)
        elif cfg["screen_init"] == 0:  # as before the option: predictor runs of earlier versions still resume
            cfg.pop("screen_init")
        return {"config": cfg, "fingerprint": self.fingerprint, "space_hash": self.space.hash}

    def _load(self) -> None:
        if self.out_dir is None:
            return
        state_path = self.out_dir / STATE_FILE
        if state_path.is_file():
            try:
                state = json.loads(state_path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise SearchError(f"cannot read search checkpoint {state_path}: {e}") from None
            if state.get("version") != STATE_VERSION:
                raise SearchError(f"search checkpoint {state_path} has version {state.get('version')}, expected {STATE_VERSION}")
            check_identity(state.get("identity", {}), self._identity(), f"search checkpoint {state_path}")
            self.cache = {c["arch"]: Candidate(**c) for c in state["cache"]}
            self.population = list(state["population"])
            self.history = list(state["history"])
            self.iteration_done = int(state["iteration_done"])
        # the evaluation journal: one identity header, one writer (pid lock), damaged lines skipped
        self._journal = Journal(self.out_dir / CACHE_FILE, self._identity(), what=f"search journal {self.out_dir / CACHE_FILE}",
                                header_key="identity", required=("arch", "latency_ms", "fitness"),
                                lost="one evaluated candidate (it is evaluated again)").open()
        for rec in self._journal.rows:
            if rec["arch"] not in self.cache:
                self.pending[rec["arch"]] = (float(rec["latency_ms"]), float(rec["fitness"]))

    def _save(self) -> None:
        if self.out_dir is None:
            return
        state = {
            "version": STATE_VERSION,
            "identity": self._identity(),
            "iteration_done": self.iteration_done,
            "iterations": self.config.iterations,
            "lat_range_ms": [self.lat_min, self.lat_max],
            "population": self.population,
            "history": self.history,
            "cache": [asdict(c) for c in sorted(self.cache.values(), key=lambda c: c.index)],
        }
        atomic_write_text(self.out_dir / STATE_FILE, json.dumps(state))

    def _append_cache(self, cand: Candidate) -> None:
        if self._journal is not None:
            self._journal.append(asdict(cand))

    # ---------------------------------------------------------------------------- evaluation
    def _fitness_values(self, archs: list[Arch]):
        """Fitness of ``archs`` in order: ``fitness.map`` (e.g. a process pool) when it has one."""
        if hasattr(self.fitness_fn, "map"):
            return iter(self.fitness_fn.map(archs))
        return (self.fitness_fn(a) for a in archs)

    def _evaluate(self, items: list[tuple[Arch, float]], iteration: int, origin: str, desc: str) -> None:
        todo: list[tuple[Arch, float]] = []
        seen: set[str] = set()
        for arch, lat in items:
            key = arch.to_string()
            if key not in self.cache and key not in seen:
                seen.add(key)
                todo.append((arch, lat))
        values = self._fitness_values([a for a, _ in todo if a.to_string() not in self.pending])
        bar = None
        if self.progress and todo:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=desc, unit="arch", leave=False, dynamic_ncols=True)
        for arch, lat in todo:
            key = arch.to_string()
            if key in self.pending:  # evaluated by the interrupted run
                lat, fit = self.pending.pop(key)
            else:
                fit = float(next(values))
                self.fitness_calls += 1
            cand = Candidate(key, float(lat), fit, len(self.cache), iteration, origin)
            self.cache[key] = cand
            self._append_cache(cand)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()

    # ------------------------------------------------------------------------------ breeding
    def _init_screened(self) -> int:
        """How many of the initial population the predictor picks (0 without one, or when the rest
        would be too few to fit it on: fewer than ``MIN_FIT`` or than two per group).

        Why: at the quickstart's budget (population 100, 4 x 20 offspring) 55 % of the evaluations
        are the initial population, which an offspring-only predictor never screens; there uniform
        sampling, whose samples crowd the middle of the latency range, still rose above every LGS
        front in tenths 4-6 on two of three seeds (``bench/predictor_search.py``, thirteenth session)."""
        cfg = self.config
        if cfg.predictor == "none" or cfg.screen_init <= 0:
            return 0
        n = int(round(cfg.population * cfg.screen_init))
        rest = cfg.population - n
        return n if rest >= max(MIN_FIT, 2 * (len(self.edges) - 1)) else 0

    def _initial_sample(self, rng: random.Random, size: int) -> list[tuple[Arch, float]]:
        """``size`` architectures drawn as the initial population is (lines 4-6, or uniform)."""
        cfg = self.config
        sampler = LatencyGroupSampler(self.space, self.latency_fn, cfg.resolution, cfg.max_attempts)
        if cfg.sampler == "lgs":
            return sampler.population(rng, size, self.edges, strata=cfg.strata)
        return uniform_population(self.space, rng, size, cfg.resolution, self.latency_fn,
                                  max_latency_ms=cfg.max_latency_ms, fallback=sampler, lat_min_ms=self.lat_min)

    def _rng(self, iteration: int) -> random.Random:
        return random.Random(f"hwnas-search|{self.config.seed}|{iteration}")

    def _components(self) -> list[list[FieldName]]:
        """Crossover units: the stem, each backbone stage (width, depth, layer kernels), each head level."""
        comps: dict[Any, list[FieldName]] = {}
        for name in self.genome.fields:
            unit = name[:2] if name[0] != "stem" else name
            comps.setdefault(unit, []).append(name)
        return list(comps.values())

    def _breed(self, parents: list[str], rng: random.Random, known: set[str]) -> list[tuple[Arch, float]]:
        cfg = self.config
        g = self.genome
        comps = self._components()
        children: list[tuple[Arch, float]] = []
        batch: set[str] = set()
        for pi, parent_key in enumerate(parents):
            parent = g.from_arch(Arch.from_string(parent_key), rng)
            for _attempt in range(cfg.max_attempts):
                child = dict(parent)
                if len(parents) > 1 and rng.random() < cfg.crossover_prob:
                    other = rng.randrange(len(parents) - 1)
                    other += other >= pi  # any parent but this one
                    mate = g.from_arch(Arch.from_string(parents[other]), rng)
                    for unit in comps:
                        if rng.random() < 0.5:
                            for name in unit:
                                child[name] = mate[name]
                for name in g.fields:
                    if rng.random() < cfg.mutation_prob:
                        child[name] = rng.choice(g.choices[name])
                arch = g.to_arch(child)
                key = arch.to_string()
                if key in known or key in batch or not self.space.contains(arch):
                    continue
                lat = float(self.latency_fn(arch))
                if cfg.max_latency_ms is not None and lat > cfg.max_latency_ms:
                    continue
                batch.add(key)
                children.append((arch, lat))
                break
        return children

    def _select(self) -> list[str]:
        cfg = self.config
        pop = self.population
        pts = [(self.cache[a].latency_ms, self.cache[a].fitness) for a in pop]
        n_groups = len(self.edges) - 1
        members: list[list[int]] = [[] for _ in range(n_groups)]
        for i, (lat, _) in enumerate(pts):
            members[group_of(lat, self.edges)].append(i)
        chosen: list[int] = []
        for gi in range(n_groups):
            quota = cfg.keep // n_groups + (1 if gi < cfg.keep % n_groups else 0)
            chosen.extend(select_by_fronts(pts, members[gi], quota))
        if not chosen:
            return []
        base = list(chosen)
        while len(chosen) < cfg.keep:  # small or empty groups: their places go to the chosen, in turn
            chosen.append(base[len(chosen) % len(base)])
        return [pop[i] for i in chosen]

    def _breed_pool(self, parents: list[str], rng: random.Random, known: set[str]) -> list[tuple[Arch, float]]:
        """``screen_factor`` rounds of :meth:`_breed` over the same parents: the offspring to screen."""
        pool: list[tuple[Arch, float]] = []
        seen = set(known)
        for _round in range(self.config.screen_factor):
            kids = self._breed(parents, rng, seen)
            seen.update(a.to_string() for a, _ in kids)
            pool.extend(kids)
        return pool

    def _encoded(self, key: str, latency_ms: float):
        hit = self._encodings.get(key)
        if hit is None:
            hit = self._encodings[key] = self._encoder.encode(Arch.from_string(key), latency_ms)
        return hit

    def _screen(self, pool: list[tuple[Arch, float]], budget: int, rng: random.Random, iteration: int) -> tuple[list[tuple[Arch, float]], dict[str, float]]:
        """The ``budget`` offspring of ``pool`` worth a real evaluation, and their predictions.

        The predictor is fitted on every evaluated candidate. Each latency group gets a share of
        ``budget`` proportional to its share of the pool (as many as plain LGS would evaluate there,
        in expectation). Within a group, offspring are ranked by predicted fitness minus the
        fitness of the evaluated front at their latency (how far above the current front they are
        predicted to land); the best ``1 - explore`` of the share are taken, the rest drawn at random
        from the group's remaining offspring, so a wrong predictor cannot shut out a region.
        """
        import numpy as np

        if len(pool) <= budget:
            return pool, {}
        cands = sorted(self.cache.values(), key=lambda c: c.index)
        X = np.stack([self._encoded(c.arch, c.latency_ms) for c in cands])
        y = np.array([c.fitness for c in cands])
        model = make_predictor(self.config.predictor, seed=self.config.seed * 1_000_003 + iteration).fit(X, y)
        keys = [a.to_string() for a, _ in pool]
        pred = model.predict(np.stack([self._encoded(k, lat) for k, (_, lat) in zip(keys, pool)]))
        front = sorted((cands[i].latency_ms, cands[i].fitness) for i in pareto_front([(c.latency_ms, c.fitness) for c in cands]))
        floor = min(y)
        score = []
        for (_, lat), p in zip(pool, pred):
            below = [f for fl, f in front if fl <= lat]
            score.append(float(p) - (below[-1] if below else floor))
        n_groups = len(self.edges) - 1
        members: list[list[int]] = [[] for _ in range(n_groups)]
        for i, (_, lat) in enumerate(pool):
            members[group_of(lat, self.edges)].append(i)
        # largest-remainder split of the budget over groups, by their share of the pool
        exact = [budget * len(m) / len(pool) for m in members]
        quota = [int(e) for e in exact]
        for gi in sorted(range(n_groups), key=lambda g: (-(exact[g] - quota[g]), g))[: budget - sum(quota)]:
            quota[gi] += 1
        chosen: list[int] = []
        for gi, idx in enumerate(members):
            if not quota[gi]:
                continue
            ranked = sorted(idx, key=lambda i: (-score[i], i))
            n_best = quota[gi] - int(round(quota[gi] * self.config.explore))
            chosen += ranked[:n_best]
            rest = sorted(ranked[n_best:])  # breeding order: the random picks do not depend on the ranking
            chosen += rng.sample(rest, min(len(rest), quota[gi] - n_best))
        chosen.sort()  # evaluation order = breeding order
        return [pool[i] for i in chosen], {keys[i]: float(pred[i]) for i in chosen}

    def _update_population(self, new: list[str]) -> None:
        merged = list(dict.fromkeys(self.population + new))
        if self.config.population_update == "front":
            pts = [(self.cache[a].latency_ms, self.cache[a].fitness) for a in merged]
            merged = [merged[i] for i in sorted(pareto_front(pts))]
        self.population = merged

    def _record(self, iteration: int, seconds: float, predicted: int = 0, predictions: dict[str, float] | None = None) -> None:
        cands = list(self.cache.values())
        front = [cands[i] for i in pareto_front([(c.latency_ms, c.fitness) for c in cands])]
        row = {
            "iteration": iteration,
            "evaluated": len(cands),
            "population": len(self.population),
            "front_size": len(front),
            "hypervolume": normalized_hypervolume(front, self.lat_min, self.lat_max),
            "best_fitness": max(c.fitness for c in cands),
            "seconds": round(seconds, 3),
        }
        if self.config.predictor != "none" and (iteration > 0 or predicted):
            row["predicted"] = predicted  # offspring scored by the predictor this iteration
            if predictions:  # how well it ranked the ones then evaluated (online, never seen before)
                keys = [k for k in predictions if k in self.cache]
                tau = kendall_tau([predictions[k] for k in keys], [self.cache[k].fitness for k in keys])
                row["predictor_tau"] = None if tau != tau else round(tau, 4)
        self.history.append(row)

    # ------------------------------------------------------------------------------------ run
    def run(self) -> SearchResult:
        cfg = self.config
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self._load()
        try:
            if self.iteration_done < 0:
                t0 = time.perf_counter()
                rng = self._rng(0)
                n_screened = self._init_screened()
                init = self._initial_sample(rng, cfg.population - n_screened)
                self._evaluate(init, 0, "init", "initial population")
                predicted, predictions = 0, None
                if n_screened:
                    known = set(self.cache)
                    pool = [(a, lat) for a, lat in self._initial_sample(rng, n_screened * cfg.screen_factor)
                            if a.to_string() not in known]
                    chosen, predictions = self._screen(pool, min(n_screened, len(pool)), rng, 0)
                    predicted = len(pool) if predictions else 0
                    self._evaluate(chosen, 0, "init", "initial population (screened)")
                    init = init + chosen
                self.population = list(dict.fromkeys(a.to_string() for a, _ in init))  # line 5: P = union of groups
                self.iteration_done = 0
                self._record(0, time.perf_counter() - t0, predicted, predictions)
                self._save()
            for it in range(self.iteration_done + 1, cfg.iterations + 1):
                t0 = time.perf_counter()
                rng = self._rng(it)
                known = set(self.cache)
                parents = self._select()
                predicted, predictions = 0, None
                if cfg.predictor == "none":
                    children = self._breed(parents, rng, known)
                else:  # breed screen_factor x more, evaluate as many as plain LGS would
                    pool = self._breed_pool(parents, rng, known)
                    children, predictions = self._screen(pool, min(len(parents), len(pool)), rng, it)
                    predicted = len(pool) if predictions else 0
                self._evaluate(children, it, "offspring", f"iteration {it}/{cfg.iterations}")
                self._update_population([a.to_string() for a, _ in children])
                self.iteration_done = it
                self._record(it, time.perf_counter() - t0, predicted, predictions)
                self._save()
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        return self.result()

    def result(self) -> SearchResult:
        cands = sorted(self.cache.values(), key=lambda c: c.index)
        feasible = [c for c in cands if self.config.max_latency_ms is None or c.latency_ms <= self.config.max_latency_ms]
        front = [feasible[i] for i in pareto_front([(c.latency_ms, c.fitness) for c in feasible])]
        predicted = sum(h.get("predicted", 0) for h in self.history)
        return SearchResult(self.config, self.lat_min, self.lat_max, cands, list(self.population), front, list(self.history),
                            list(self.edges), self.fitness_calls, predicted)


def search(
    space: SearchSpace,
    latency_ms: Callable[[Arch], float],
    fitness: Callable[[Arch], float],
    config: SearchConfig,
    out_dir: str | Path | None = None,
    fingerprint: dict[str, Any] | None = None,
    progress: bool = True,
) -> SearchResult:
    """Run (or resume, when ``out_dir`` holds a checkpoint) one LGS / uniform evolutionary search."""
    return EvolutionSearch(space, latency_ms, fitness, config, out_dir, fingerprint, progress).run()


__all__ = ["SearchConfig", "SearchResult", "Candidate", "EvolutionSearch", "search", "latency_range", "normalized_hypervolume"]
