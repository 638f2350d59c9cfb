"""Synthetic stand-ins for a LUT and a supernet, for tests and benchmarks of the search engine.

:class:`MacsLatencyModel` is LUT-like: the latency of an architecture is a sum over its blocks
(stem, each MBConv layer, each transport/decoder branch and fusion, each prediction conv) of a
per-block cost = multiply-accumulates / throughput + activation traffic / bandwidth + a fixed
per-block overhead. Like a real LUT it couples fields (a stage's width is the next stage's input)
and depends on an SMSU only through its largest kernel (its deploy form).

:class:`SyntheticFitness` rises with log-capacity with diminishing returns, plus a fixed hidden
bonus per (field, value) — so some choices are better than others at equal latency and the search
has something to find — plus deterministic per-architecture noise. Neither is a measurement.
"""

from __future__ import annotations

import hashlib
import math

from hwnas.arch import Arch
from hwnas.search.sampling import Genome
from hwnas.space import SearchSpace


def _stable_unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


class MacsLatencyModel:
    """``latency_ms(arch)`` as a LUT-like sum of per-block costs (see module docstring)."""

    def __init__(self, space: SearchSpace, gmacs_per_ms: float = 0.5, mbytes_per_ms: float = 20.0, block_overhead_ms: float = 0.01):
        self.space = space
        self.gmacs_per_ms = gmacs_per_ms
        self.mbytes_per_ms = mbytes_per_ms
        self.block_overhead_ms = block_overhead_ms

    def _block(self, macs: float, activations: float) -> float:
        return macs / (self.gmacs_per_ms * 1e9) + 4 * activations / (self.mbytes_per_ms * 1e6) + self.block_overhead_ms

    def blocks_ms(self, arch: Arch) -> list[float]:
        sp = self.space
        out = []
        side = arch.resolution // sp.stem_stride
        out.append(self._block(side * side * 3 * arch.stem_width * 9, side * side * arch.stem_width))
        cin = arch.stem_width
        stage_width, stage_side = [], []
        for s, spec in zip(arch.stages, sp.stages):
            for j, ks in enumerate(s.kernel_sizes):
                stride = spec.stride if j == 0 else 1
                hidden = cin * spec.expand_ratio
                out_side = side // stride
                k = max(ks)
                macs = (side * side * cin * hidden if spec.expand_ratio != 1 else 0) + out_side**2 * hidden * (k * k + s.width)
                macs += 2 * hidden * max(1, int(hidden * sp.se_ratio))  # squeeze-excitation
                out.append(self._block(macs, side * side * hidden + out_side**2 * (hidden + s.width)))
                cin, side = s.width, out_side
            stage_width.append(s.width)
            stage_side.append(side)
        level_width = [stage_width[st - 1] for st in sp.head.level_stages]
        level_side = [stage_side[st - 1] for st in sp.head.level_stages]
        ch = sp.head.channels
        for i, lv in enumerate(arch.transport):
            for j in lv.inputs:
                out.append(self._block(level_side[j - 1] ** 2 * level_width[j - 1] * ch[i], level_side[i] ** 2 * ch[i]))
            k = max(lv.kernel_sizes)
            out.append(self._block(2 * level_side[i] ** 2 * ch[i] * (k * k + ch[i]), 4 * level_side[i] ** 2 * ch[i]))
        for i, lv in enumerate(arch.decoder):
            for j in lv.inputs:
                out.append(self._block(level_side[j - 1] ** 2 * ch[j - 1] * ch[i], level_side[i] ** 2 * ch[i]))
            k = max(lv.kernel_sizes)
            out.append(self._block(level_side[i] ** 2 * ch[i] * (k * k + ch[i]), 2 * level_side[i] ** 2 * ch[i]))
        out.append(self._block(level_side[0] ** 2 * ch[0], arch.resolution**2))  # level-1 prediction
        return out

    def __call__(self, arch: Arch) -> float:
        return sum(self.blocks_ms(arch))


class SyntheticFitness:
    """``fitness(arch)`` in about [0.5, 1]: capacity with diminishing returns + hidden bonuses + noise."""

    def __init__(self, space: SearchSpace, resolution: int, seed: int = 0, bonus_scale: float = 0.01, noise: float = 0.005):
        self.space = space
        self.latency = MacsLatencyModel(space, block_overhead_ms=0.0)
        self.lo = math.log(self.latency(space.smallest(resolution)))
        self.hi = math.log(self.latency(space.largest(resolution)))
        self.genome = Genome(space, resolution)
        self.seed = seed
        self.bonus_scale = bonus_scale
        self.noise = noise
        self.calls = 0

    def __call__(self, arch: Arch) -> float:
        self.calls += 1
        capacity = (math.log(self.latency(arch)) - self.lo) / (self.hi - self.lo)
        capacity = min(1.0, max(0.0, capacity))
        values = self.genome.from_arch(arch)
        bonus = 0.0
        for name, value in values.items():
            if name[0] == "stage" and name[2] == "kernels" and name[3] > values[("stage", name[1], "depth")]:
                continue  # inactive layer
            bonus += (2 * _stable_unit(f"{self.seed}|{name}|{value}") - 1) * self.bonus_scale
        noise = (2 * _stable_unit(f"{self.seed}|{arch.to_string()}") - 1) * self.noise
        return 0.55 + 0.3 * math.sqrt(capacity) + bonus + noise


def synthetic_pair(space: SearchSpace, resolution: int, seed: int = 0) -> tuple[MacsLatencyModel, SyntheticFitness]:
    return MacsLatencyModel(space), SyntheticFitness(space, resolution, seed=seed)


__all__ = ["MacsLatencyModel", "SyntheticFitness", "synthetic_pair"]
