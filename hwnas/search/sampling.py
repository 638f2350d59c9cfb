"""Samplers of the iNAS search: layer-wise uniform and latency-group sampling (LGS).

Thesis §3.2.3 (iNAS, Algorithm 1, fig. 3.6/3.10): drawing every field of an architecture
uniformly makes its latency a sum of independent terms, which piles up in the middle of the
range — the fastest and slowest models are almost never drawn (thesis: 50.2 % of the range
covered). LGS splits ``[LAT_min, LAT_max]`` into ``G`` equal groups and draws ``N/G``
architectures *inside* each group, "per layer, only sampling candidates compatible with the group".

How "compatible" is decided here (our scheme, not the authors' code): the fields are fixed one at
a time in a random order; a candidate value for the current field is compatible with a target
interval ``[lo, hi]`` when the cheapest and the dearest completions of the still-free fields
(every free field at its smallest / largest choice, as in ``space.smallest/largest``) give
latencies that bracket part of the interval. That needs only that latency does not decrease when a
field grows (true of a LUT sum of measured blocks, up to noise), works with any black-box
``latency_ms(arch)``, and never loops unboundedly: every field tries each of its values at most
once. The authors' code instead rejection-samples each component inside its share of the
interval and relaxes after 100 rejections.

To cover each group evenly, not just to land in it, the i-th sample of a group aims at the
i-th of ``strata`` equal sub-intervals of the group (stratified targets). A draw counts for its
group if its exact latency lies in the *group*; a sample is redrawn at most ``max_attempts`` times,
after which the draw closest to the group is kept (so every group always gets exactly its share,
and :class:`SampleStats` counts such fallbacks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Hashable

from hwnas.arch import Arch, LevelArch, StageArch
from hwnas.space import NUM_LEVELS, SearchSpace, decoder_input_choices, transport_input_choices

LatencyFn = Callable[[Arch], float]
FieldName = tuple[Hashable, ...]


def _kernel_cost_order(kernel_set: tuple[int, ...]) -> tuple:
    # deploy form of an SMSU = one depthwise conv at its largest kernel: the max decides latency
    return (max(kernel_set), len(kernel_set), kernel_set)


class Genome:
    """An architecture of a space at one resolution as named fields with cost-ordered choices.

    Fields: ``("stem",)``; per stage i (1-based) ``("stage", i, "width")``, ``("stage", i,
    "depth")`` and ``("stage", i, "kernels", j)`` for every layer j up to the stage's largest depth
    (layers beyond the chosen depth are inactive); per level ``("transport"|"decoder", i,
    "inputs"|"kernels")``. ``choices[name]`` lists each field's values from cheapest to dearest,
    so index 0 / -1 are the values of ``space.smallest`` / ``space.largest``.
    """

    def __init__(self, space: SearchSpace, resolution: int):
        self.space = space
        self.resolution = resolution
        ch: dict[FieldName, list] = {("stem",): sorted(space.stem_widths)}
        for i, spec in enumerate(space.stages, 1):
            ch[("stage", i, "width")] = sorted(spec.widths)
            ch[("stage", i, "depth")] = sorted(spec.depths)
            for j in range(1, max(spec.depths) + 1):
                ch[("stage", i, "kernels", j)] = sorted(spec.kernel_sets, key=_kernel_cost_order)
        head = space.head
        for name, inputs_fn, kernel_sets in (
            ("transport", transport_input_choices, head.transport_kernel_sets),
            ("decoder", decoder_input_choices, head.decoder_kernel_sets),
        ):
            for i in range(1, NUM_LEVELS + 1):
                ch[(name, i, "inputs")] = sorted(inputs_fn(i), key=lambda s: (len(s), s))
                ch[(name, i, "kernels")] = sorted(kernel_sets, key=_kernel_cost_order)
        self.choices = ch
        self.fields: list[FieldName] = list(ch)

    # ------------------------------------------------------------------------ conversions
    def to_arch(self, values: dict[FieldName, object]) -> Arch:
        stages = []
        for i in range(1, len(self.space.stages) + 1):
            depth = values[("stage", i, "depth")]
            kernels = tuple(values[("stage", i, "kernels", j)] for j in range(1, depth + 1))
            stages.append(StageArch(values[("stage", i, "width")], kernels))

        def levels(name: str) -> tuple[LevelArch, ...]:
            return tuple(
                LevelArch(values[(name, i, "inputs")], values[(name, i, "kernels")]) for i in range(1, NUM_LEVELS + 1)
            )

        return Arch(self.resolution, values[("stem",)], tuple(stages), levels("transport"), levels("decoder"))

    def from_arch(self, arch: Arch, rng: random.Random | None = None) -> dict[FieldName, object]:
        """Field values of ``arch``; inactive layer kernels (beyond a stage's depth) are drawn
        uniformly with ``rng`` (or set to the cheapest) so a later depth increase has values."""
        v: dict[FieldName, object] = {("stem",): arch.stem_width}
        for i, (s, spec) in enumerate(zip(arch.stages, self.space.stages), 1):
            v[("stage", i, "width")] = s.width
            v[("stage", i, "depth")] = s.depth
            for j in range(1, max(spec.depths) + 1):
                if j <= s.depth:
                    v[("stage", i, "kernels", j)] = s.kernel_sizes[j - 1]
                else:
                    opts = self.choices[("stage", i, "kernels", j)]
                    v[("stage", i, "kernels", j)] = rng.choice(opts) if rng else opts[0]
        for name, levels in (("transport", arch.transport), ("decoder", arch.decoder)):
            for i, lv in enumerate(levels, 1):
                v[(name, i, "inputs")] = lv.inputs
                v[(name, i, "kernels")] = lv.kernel_sizes
        return v

    def complete(self, fixed: dict[FieldName, object], dearest: bool) -> Arch:
        """``fixed`` with every free field at its cheapest (or dearest) value."""
        pick = -1 if dearest else 0
        values = {f: fixed[f] if f in fixed else self.choices[f][pick] for f in self.fields}
        return self.to_arch(values)

    def uniform(self, rng: random.Random) -> dict[FieldName, object]:
        return {f: rng.choice(self.choices[f]) for f in self.fields}


# ------------------------------------------------------------------------------ uniform
def sample_uniform(space: SearchSpace, rng: random.Random, resolution: int) -> Arch:
    """Layer-wise uniform sampling (the baseline of thesis fig. 3.10): every field independently."""
    return space.sample(rng, resolution=resolution)


# ---------------------------------------------------------------------------------- LGS
@dataclass
class SampleStats:
    """What a population draw cost and how well it kept to its groups."""

    latency_calls: int = 0
    draws: int = 0  # complete architectures drawn (more than one per sample when one missed its group)
    fallbacks: int = 0  # samples kept outside their group after max_attempts draws
    duplicates_skipped: int = 0
    per_group: list[int] = field(default_factory=list)


def group_edges(lat_min_ms: float, lat_max_ms: float, groups: int) -> list[float]:
    """``groups + 1`` equally spaced boundaries of ``[lat_min_ms, lat_max_ms]``."""
    step = (lat_max_ms - lat_min_ms) / groups
    return [lat_min_ms + g * step for g in range(groups)] + [lat_max_ms]


def group_of(latency_ms: float, edges: list[float]) -> int:
    """Index of the group holding ``latency_ms``; values outside the range go to the end groups."""
    groups = len(edges) - 1
    if latency_ms <= edges[0]:
        return 0
    if latency_ms >= edges[-1]:
        return groups - 1
    step = (edges[-1] - edges[0]) / groups
    return min(groups - 1, int((latency_ms - edges[0]) / step))


class LatencyGroupSampler:
    """Draw architectures whose latency falls in a given interval (one LGS group).

    ``latency_ms`` is any callable ``Arch -> float`` that does not decrease when a field grows
    (a LUT sum). See the module docstring for the scheme and where it departs from the authors'.
    """

    def __init__(self, space: SearchSpace, latency_ms: LatencyFn, resolution: int, max_attempts: int = 20):
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.space = space
        self.genome = Genome(space, resolution)
        self.latency_ms = latency_ms
        self.resolution = resolution
        self.max_attempts = max_attempts
        self.stats = SampleStats()

    def _lat(self, arch: Arch) -> float:
        self.stats.latency_calls += 1
        return self.latency_ms(arch)

    def draw(self, rng: random.Random, lo: float, hi: float) -> tuple[Arch, float]:
        """One architecture aimed at ``[lo, hi]`` (not guaranteed inside: see :meth:`sample`)."""
        g = self.genome
        fixed: dict[FieldName, object] = {}
        order = list(g.fields)
        rng.shuffle(order)
        for name in order:
            options = list(g.choices[name])
            rng.shuffle(options)
            best, best_gap = None, float("inf")
            for value in options:
                fixed[name] = value
                cheap = self._lat(g.complete(fixed, dearest=False))
                if cheap > hi:  # even the cheapest completion is too slow
                    gap = cheap - hi
                else:
                    dear = self._lat(g.complete(fixed, dearest=True))
                    gap = max(0.0, lo - dear)
                if gap == 0.0:
                    best = value
                    break
                if gap < best_gap:
                    best, best_gap = value, gap
            fixed[name] = best
        arch = g.to_arch(fixed)
        return arch, self._lat(arch)

    def sample(
        self, rng: random.Random, lo: float, hi: float, target: tuple[float, float] | None = None, exclude: set[str] | None = None
    ) -> tuple[Arch, float]:
        """An architecture with latency in ``[lo, hi]``, aiming at ``target`` (a sub-interval).

        Redrawn at most ``max_attempts`` times when it lands outside ``[lo, hi]`` or its string is
        in ``exclude``; then the closest draw is kept (a counted fallback), never an endless loop.
        """
        t_lo, t_hi = target if target is not None else (lo, hi)
        best: tuple[float, Arch, float] | None = None
        for attempt in range(self.max_attempts):
            # after half the attempts at the stratum, aim at the whole group
            a_lo, a_hi = (t_lo, t_hi) if attempt < max(1, self.max_attempts // 2) else (lo, hi)
            arch, lat = self.draw(rng, a_lo, a_hi)
            self.stats.draws += 1
            duplicate = exclude is not None and arch.to_string() in exclude
            gap = max(0.0, lo - lat, lat - hi)
            if gap == 0.0 and not duplicate:
                return arch, lat
            if duplicate:
                self.stats.duplicates_skipped += 1
                gap += 1e9  # prefer any new architecture over a duplicate
            if best is None or gap < best[0]:
                best = (gap, arch, lat)
        self.stats.fallbacks += 1
        assert best is not None
        return best[1], best[2]

    def population(
        self, rng: random.Random, size: int, edges: list[float], strata: int = 10
    ) -> list[tuple[Arch, float]]:
        """``size`` architectures, ``size // G`` per group (the first ``size % G`` groups get one more).

        The j-th sample of a group aims at stratum ``j mod strata`` of that group.
        """
        groups = len(edges) - 1
        out: list[tuple[Arch, float]] = []
        seen: set[str] = set()
        self.stats.per_group = []
        for gi in range(groups):
            lo, hi = edges[gi], edges[gi + 1]
            count = size // groups + (1 if gi < size % groups else 0)
            self.stats.per_group.append(count)
            n_strata = max(1, min(strata, count))
            width = (hi - lo) / n_strata
            for j in range(count):
                s = j % n_strata
                arch, lat = self.sample(rng, lo, hi, target=(lo + s * width, lo + (s + 1) * width), exclude=seen)
                seen.add(arch.to_string())
                out.append((arch, lat))
        return out


def uniform_population(
    space: SearchSpace, rng: random.Random, size: int, resolution: int, latency_ms: LatencyFn,
    max_latency_ms: float | None = None, max_attempts: int = 50, fallback: LatencyGroupSampler | None = None,
    lat_min_ms: float | None = None,
) -> list[tuple[Arch, float]]:
    """``size`` layer-wise uniform samples (distinct when possible); under a latency cap each is
    redrawn at most ``max_attempts`` times, then drawn by ``fallback`` inside ``[lat_min_ms, cap]``."""
    out: list[tuple[Arch, float]] = []
    seen: set[str] = set()
    for _ in range(size):
        arch = lat = None
        for _attempt in range(max_attempts):
            cand = sample_uniform(space, rng, resolution)
            if cand.to_string() in seen:
                continue
            cand_lat = latency_ms(cand)
            if max_latency_ms is None or cand_lat <= max_latency_ms:
                arch, lat = cand, cand_lat
                break
        if arch is None:
            if fallback is None or max_latency_ms is None or lat_min_ms is None:
                arch = sample_uniform(space, rng, resolution)  # tiny spaces: a duplicate is all there is
                lat = latency_ms(arch)
            else:
                arch, lat = fallback.sample(rng, lat_min_ms, max_latency_ms, exclude=seen)
        seen.add(arch.to_string())
        out.append((arch, lat))
    return out
