"""The iNAS backbone (thesis §3.2.1, table 3.1): a stem conv and searchable MBConv+SMSU stages.

Definition (top-level keys of the space YAML)::

    stem: {widths: [8, 12], kernel_size: 3, stride: 2}
    se_ratio: 0.25
    stages:                      # one entry per stage
      - {expand_ratio: 3, stride: 2, widths: [12, 16], depths: [1, 2], kernel_sizes: [3, 5, 7]}
    head: {level_stages: [1, 2, 3, 5, 7], ...}   # the stage feeding head level 1..5

An architecture picks the stem width, and per stage a width, a depth and per layer the kernel set
its SMSU combines (any non-empty subset of the stage's ``kernel_sizes``). Module paths (and so
checkpoint keys and LUT block paths): ``stem``, ``stages.S.L`` (static) / ``stages.S.layers.L``
(supernet, :class:`hwnas.supernet.ElasticStage`).

Latency-table keys::

    stem r64>32 c3>8 k3 s2
    mbconv r32>16 c8>12 e3 s2 k7 se0.25      an SMSU is keyed by its LARGEST kernel: its deploy
                                             form is one depthwise conv of that size
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from hwnas.arch import Arch, KernelSet, StageArch
from hwnas.backbones import Backbone
from hwnas.errors import ArchError
from hwnas.levels import NUM_LEVELS, subsets

STEM_KEYS = ("widths", "kernel_size", "stride")
STAGE_KEYS = ("expand_ratio", "stride", "widths", "depths", "kernel_sizes")


@dataclass(frozen=True)
class StageSpec:
    expand_ratio: int
    stride: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernel_sizes: tuple[int, ...]  # kernels an SMSU may combine; any non-empty subset is allowed

    @property
    def kernel_sets(self) -> list[KernelSet]:
        return subsets(self.kernel_sizes)


class MBConvBackbone(Backbone):
    type = "mbconv"
    module_names = ("stem", "stages")

    def __init__(self, stem_widths: tuple[int, ...], stem_kernel_size: int, stem_stride: int, se_ratio: float,
                 stages: tuple[StageSpec, ...], level_stages: tuple[int, ...]):
        self.stem_widths = stem_widths
        self.stem_kernel_size, self.stem_stride, self.se_ratio = stem_kernel_size, stem_stride, se_ratio
        self.stages = stages
        self.level_stages = level_stages

    # ----------------------------------------------------------------------- definition
    @classmethod
    def from_config(cls, config: dict[str, Any], source: str, base_dir: Path | None) -> tuple[MBConvBackbone, dict]:
        stem = config["stem"]
        stages = tuple(
            StageSpec(
                expand_ratio=int(s["expand_ratio"]),
                stride=int(s["stride"]),
                widths=tuple(int(w) for w in s["widths"]),
                depths=tuple(int(d) for d in s["depths"]),
                kernel_sizes=tuple(sorted(int(k) for k in s["kernel_sizes"])),
            )
            for s in config["stages"]
        )
        backbone = cls(tuple(int(w) for w in stem["widths"]), int(stem.get("kernel_size", 3)), int(stem.get("stride", 2)),
                       float(config.get("se_ratio", 0.25)), stages,
                       tuple(int(x) for x in config["head"]["level_stages"]))
        return backbone, config

    @classmethod
    def check_schema(cls, schema, config: dict[str, Any]) -> int:
        """Stem, se_ratio, stages and head (``level_stages``: stage i must output stride 2**i)."""
        for key in ("stem", "stages"):
            if key not in config:
                raise schema.fail(key, "missing (an MBConv backbone needs stem and stages)")
        stem = schema.mapping(config["stem"], "stem", ("widths",), STEM_KEYS)
        schema.integers(stem["widths"], "stem.widths")
        schema.integer(stem.get("kernel_size", 3), "stem.kernel_size", kernel=True)
        stride = schema.integer(stem.get("stride", 2), "stem.stride")
        se_ratio = config.get("se_ratio", 0.25)
        if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float)) or not math.isfinite(se_ratio) \
                or not 0 <= se_ratio < 1:
            raise schema.fail("se_ratio", f"expected a number in [0, 1) (0 = no squeeze-excite), got {schema.show(se_ratio)}")
        stages = config["stages"]
        if not isinstance(stages, list) or not stages:
            raise schema.fail("stages", f"expected a non-empty list of stages, got {schema.show(stages)}")
        strides = []
        for i, st in enumerate(stages, 1):
            field = f"stages[{i}]"
            st = schema.mapping(st, field, STAGE_KEYS, STAGE_KEYS)
            schema.integer(st["expand_ratio"], f"{field}.expand_ratio")
            stride *= schema.integer(st["stride"], f"{field}.stride")
            strides.append(stride)
            schema.integers(st["widths"], f"{field}.widths")
            schema.integers(st["depths"], f"{field}.depths")
            schema.integers(st["kernel_sizes"], f"{field}.kernel_sizes", kernel=True)
        head = schema.head(config["head"], level_stages=True)
        levels = schema.integers(head["level_stages"], "head.level_stages", length=NUM_LEVELS)
        if levels != sorted(levels) or levels[-1] > len(stages):
            raise schema.fail("head.level_stages", f"expected increasing stage numbers in 1..{len(stages)}, got {levels}")
        for level, stage in enumerate(levels, 1):
            if strides[stage - 1] != 2**level:
                raise schema.fail("head.level_stages",
                                  f"head level {level} needs features at stride {2**level}; stage {stage}'s output "
                                  f"has stride {strides[stage - 1]}")
        return strides[-1]

    @property
    def total_stride(self) -> int:
        return self.stage_strides()[-1]

    def stage_strides(self) -> list[int]:
        """Cumulative stride at the output of each stage (stem included)."""
        out, s = [], self.stem_stride
        for st in self.stages:
            s *= st.stride
            out.append(s)
        return out

    # -------------------------------------------------------------------- architectures
    def validate(self, arch: Arch, space_name: str) -> None:
        if arch.stem_width not in self.stem_widths:
            raise ArchError(f"stem_width={arch.stem_width} is not in space {space_name}; allowed: {list(self.stem_widths)}")
        if len(arch.stages) != len(self.stages):
            raise ArchError(f"stages: space {space_name} has {len(self.stages)} stages, the architecture {len(arch.stages)}")
        for i, (s, spec) in enumerate(zip(arch.stages, self.stages), 1):
            if s.width not in spec.widths:
                raise ArchError(f"stages[{i}].width={s.width} not allowed; allowed: {list(spec.widths)}")
            if s.depth not in spec.depths:
                raise ArchError(f"stages[{i}] depth={s.depth} not allowed; allowed: {list(spec.depths)}")
            for j, ks in enumerate(s.kernel_sizes, 1):
                if not set(ks) <= set(spec.kernel_sizes):
                    raise ArchError(
                        f"stages[{i}].kernel_sizes[{j}]={list(ks)} not allowed; "
                        f"allowed: non-empty subsets of {list(spec.kernel_sizes)}"
                    )

    def sample_stages(self, rng: random.Random) -> tuple[StageArch, ...]:
        stages = []
        for spec in self.stages:
            depth = rng.choice(spec.depths)
            kernel_sets = spec.kernel_sets
            stages.append(StageArch(rng.choice(spec.widths), tuple(rng.choice(kernel_sets) for _ in range(depth))))
        return tuple(stages)

    def extreme_stages(self, largest: bool) -> tuple[StageArch, ...]:
        pick = max if largest else min
        stages = []
        for spec in self.stages:
            ks = tuple(spec.kernel_sizes) if largest else (min(spec.kernel_sizes),)
            stages.append(StageArch(pick(spec.widths), tuple(ks for _ in range(pick(spec.depths)))))
        return tuple(stages)

    def level_widths(self, arch: Arch) -> tuple[int, ...]:
        return tuple(arch.stages[s - 1].width for s in self.level_stages)

    def level_width_choices(self) -> tuple[tuple[int, ...], ...]:
        return tuple(self.stages[s - 1].widths for s in self.level_stages)

    def stage_sizes(self, resolution: int) -> list[tuple[int, int]]:
        """(input side, output side) of every stage at input resolution ``resolution``."""
        from hwnas.ops import spatial_size

        r = spatial_size(resolution, self.stem_stride)
        out = []
        for spec in self.stages:
            out.append((r, spatial_size(r, spec.stride)))
            r = out[-1][1]
        return out

    def level_sizes(self, resolution: int) -> list[int]:
        sizes = self.stage_sizes(resolution)
        return [sizes[s - 1][1] for s in self.level_stages]

    # -------------------------------------------------------------------------- modules
    def static_modules(self, arch: Arch) -> dict:
        import torch.nn as nn

        from hwnas.ops import MBConv, conv_bn

        stem = conv_bn(3, arch.stem_width, self.stem_kernel_size, self.stem_stride, act=True)
        stages, cin = [], arch.stem_width
        for spec, stage in zip(self.stages, arch.stages):
            layers = []
            for li, ks in enumerate(stage.kernel_sizes):
                stride = spec.stride if li == 0 else 1
                layers.append(MBConv(cin, stage.width, spec.expand_ratio, stride, ks, self.se_ratio))
                cin = stage.width
            stages.append(nn.Sequential(*layers))
        return {"stem": stem, "stages": nn.ModuleList(stages)}

    def elastic_modules(self) -> dict:
        import torch.nn as nn

        from hwnas.ops import ElasticMBConv, ElasticStem
        from hwnas.supernet import ElasticStage

        stem = ElasticStem(max(self.stem_widths), self.stem_kernel_size, self.stem_stride)
        stages, max_in = [], max(self.stem_widths)
        for spec in self.stages:
            layers = []
            for li in range(max(spec.depths)):
                stride = spec.stride if li == 0 else 1
                layers.append(ElasticMBConv(max_in, max(spec.widths), spec.expand_ratio, stride, spec.kernel_sizes, self.se_ratio))
                max_in = max(spec.widths)
            stages.append(ElasticStage(layers))
        return {"stem": stem, "stages": nn.ModuleList(stages)}

    def set_active(self, net, arch: Arch) -> None:
        net.stem.active_width = arch.stem_width
        for stage, sa in zip(net.stages, arch.stages):
            stage.active_depth = sa.depth
            for layer, ks in zip(stage.layers, sa.kernel_sizes):
                layer.active_width = sa.width
                layer.smsu.active_kernels = ks

    def copy_into(self, supernet, subnet) -> None:
        supernet.stem.copy_into(subnet.stem)
        for estage, sstage in zip(supernet.stages, subnet.stages):
            for elayer, slayer in zip(estage.layers, sstage):
                elayer.copy_into(slayer)

    def levels(self, net, x):
        x = net.stem(x)
        stage_outputs = []
        for stage in net.stages:
            x = stage(x)
            stage_outputs.append(x)
        return [stage_outputs[s - 1] for s in self.level_stages]

    # ------------------------------------------------------------------------ LUT blocks
    def _stem_block(self, res: int, width: int):
        from hwnas.ops import spatial_size
        from lut.blocks import BlockSpec

        k, s = self.stem_kernel_size, self.stem_stride
        key = f"stem r{res}>{spatial_size(res, s)} c3>{width} k{k} s{s}"
        return BlockSpec(key, "stem", ((1, 3, res, res),), functools.partial(_build_stem, width, k, s), model_input=True)

    def _mbconv_block(self, r_in: int, cin: int, cout: int, expand_ratio: int, stride: int, kernel: int):
        from hwnas.ops import spatial_size
        from lut.blocks import BlockSpec

        se = f" se{self.se_ratio:g}" if self.se_ratio > 0 else ""
        key = f"mbconv r{r_in}>{spatial_size(r_in, stride)} c{cin}>{cout} e{expand_ratio} s{stride} k{kernel}{se}"
        build = functools.partial(_build_mbconv, cin, cout, expand_ratio, stride, kernel, self.se_ratio)
        return BlockSpec(key, "mbconv", ((1, cin, r_in, r_in),), build)

    def arch_blocks(self, arch: Arch) -> list:
        from hwnas.ops import spatial_size

        res = arch.resolution
        out = [(self._stem_block(res, arch.stem_width), "stem")]
        cin = arch.stem_width
        for s, (spec, stage, (r_in, _)) in enumerate(zip(self.stages, arch.stages, self.stage_sizes(res))):
            r = r_in
            for li, kernels in enumerate(stage.kernel_sizes):
                stride = spec.stride if li == 0 else 1
                out.append((self._mbconv_block(r, cin, stage.width, spec.expand_ratio, stride, max(kernels)), f"stages.{s}.{li}"))
                r, cin = spatial_size(r, stride), stage.width
        return out

    def space_blocks(self, resolution: int) -> Iterable:
        return self._space_blocks(resolution)

    def _space_blocks(self, res: int) -> Iterator:
        for w in self.stem_widths:
            yield self._stem_block(res, w)
        prev_widths = self.stem_widths
        for spec, (r_in, r_out) in zip(self.stages, self.stage_sizes(res)):
            for k in spec.kernel_sizes:  # every kernel is the largest of some kernel set
                for cout in spec.widths:
                    for cin in prev_widths:
                        yield self._mbconv_block(r_in, cin, cout, spec.expand_ratio, spec.stride, k)
                    if max(spec.depths) > 1:
                        yield self._mbconv_block(r_out, cout, cout, spec.expand_ratio, 1, k)
            prev_widths = spec.widths


def _build_stem(width: int, kernel_size: int, stride: int):
    from hwnas.blocks import deploy_form
    from hwnas.ops import conv_bn

    return deploy_form(conv_bn(3, width, kernel_size, stride, act=True))


def _build_mbconv(cin: int, cout: int, expand_ratio: int, stride: int, kernel: int, se_ratio: float):
    from hwnas.blocks import deploy_form
    from hwnas.ops import MBConv

    return deploy_form(MBConv(cin, cout, expand_ratio, stride, (kernel,), se_ratio))
