"""A fixed DARTS-family cell backbone (papers digest §5): a searched genotype stacked into the pyramid.

Definition (the space YAML's ``backbone`` mapping)::

    backbone: {type: cells, genotype: FILE or mapping, channels: C, cells_per_level: N, stem_channels: S}

Only the head and the resolution are searched: an architecture's ``stages`` is empty and its stem
width is ``stem_channels`` (default 2C). The genotype's content (not its path, and without its
``meta``) is stored in the space's definition, so it enters the space hash and a checkpoint
rebuilds the space alone. The module is :class:`hwnas.cells.backbone.CellBackbone` (attribute
``backbone``); it is one latency-table block::

    cells r64 g1a2b3c4d5e c8 n1 s16     g = genotype content hash, c = level-1 cell width,
                                        n = cells per level, s = stem width
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from hwnas.backbones import FixedBackbone
from hwnas.errors import ArchError, SpaceError
from hwnas.levels import NUM_LEVELS

ALLOWED_KEYS = ("type", "genotype", "channels", "cells_per_level", "stem_channels")


class CellsBackbone(FixedBackbone):
    type = "cells"
    describe = "cell"

    def __init__(self, genotype_json: str, channels: int, cells_per_level: int, stem_channels: int):
        self.genotype_json = genotype_json  # canonical JSON of the genotype without its meta: what identifies it
        self.channels = channels  # cell width at level 1 (doubles at every reduction)
        self.cells_per_level = cells_per_level
        self.stem_channels = stem_channels

    @classmethod
    def from_config(cls, config: dict[str, Any], source: str, base_dir: Path | None) -> tuple[CellsBackbone, dict]:
        from hwnas.cells.genotype import Genotype, load_genotype

        backbone = config["backbone"]
        unknown = set(backbone) - set(ALLOWED_KEYS)
        if unknown:
            raise SpaceError(f"search space {source}: unknown backbone key(s) {sorted(unknown)}; allowed: {sorted(ALLOWED_KEYS)}")
        g = backbone.get("genotype")
        try:
            if isinstance(g, str):
                path = Path(g)
                if not path.is_absolute() and base_dir is not None:
                    path = base_dir / path
                genotype = load_genotype(path)
            elif isinstance(g, dict):
                genotype = Genotype.from_dict(g)
            else:
                raise SpaceError(f"search space {source}: backbone.genotype must be a genotype JSON file or mapping, got {g!r}")
        except ArchError as e:
            raise SpaceError(f"search space {source}: backbone.genotype: {e}") from None
        channels = int(backbone.get("channels", 8))
        cells_per_level = int(backbone.get("cells_per_level", 1))
        stem_channels = int(backbone.get("stem_channels", 2 * channels))
        if min(channels, cells_per_level, stem_channels) < 1:
            raise SpaceError(f"search space {source}: backbone channels, cells_per_level and stem_channels must be >= 1")
        gdict = {k: v for k, v in genotype.to_dict().items() if k != "meta"}
        spec = cls(json.dumps(gdict, sort_keys=True, separators=(",", ":")), channels, cells_per_level, stem_channels)
        stored = copy.deepcopy(config)
        stored["backbone"] = {"type": "cells", "genotype": gdict, "channels": channels,
                              "cells_per_level": cells_per_level, "stem_channels": stem_channels}
        return spec, stored

    @classmethod
    def check_schema(cls, schema, config: dict[str, Any]) -> int:
        backbone = config["backbone"]
        for key in ("channels", "cells_per_level", "stem_channels"):
            if key in backbone:
                schema.integer(backbone[key], f"backbone.{key}")
        return super().check_schema(schema, config)

    @classmethod
    def mapping_from_options(cls, options: str, spec_text: str) -> dict[str, Any]:
        """``cells=PATH[:channels=C][:cells_per_level=N][:stem_channels=S]`` (PATH relative to the working folder)."""
        allowed = ("cells", "channels", "cells_per_level", "stem_channels")
        backbone: dict[str, Any] = {"type": "cells"}
        for part in options.split(":"):
            key, sep, value = part.partition("=")
            if not sep or key not in allowed or not value:
                raise SpaceError(f"space {spec_text!r}: bad option {part!r}; expected NAME:cells=GENOTYPE.json"
                                 f"[:channels=C][:cells_per_level=N][:stem_channels=S]")
            if key == "cells":
                backbone["genotype"] = value
            else:
                try:
                    backbone[key] = int(value)
                except ValueError:
                    raise SpaceError(f"space {spec_text!r}: {key} must be an integer, got {value!r}") from None
        if "genotype" not in backbone:
            raise SpaceError(f"space {spec_text!r}: needs cells=GENOTYPE.json")
        return backbone

    def genotype(self):
        from hwnas.cells.genotype import Genotype

        return Genotype.from_json(self.genotype_json)

    @property
    def genotype_hash(self) -> str:
        return hashlib.sha256(self.genotype_json.encode()).hexdigest()[:10]

    @property
    def widths(self) -> tuple[int, ...]:
        """Output channels of levels 1..5: a cell concatenates its ``steps`` nodes of width C·2^(level-1)."""
        steps = len(json.loads(self.genotype_json)["normal"])
        return tuple(steps * self.channels * 2**i for i in range(NUM_LEVELS))

    def build(self):
        from hwnas.cells.backbone import CellBackbone

        return CellBackbone(self.genotype(), self.channels, self.cells_per_level, stem_channels=self.stem_channels)

    def block_key(self, resolution: int) -> str:
        return f"cells r{resolution} g{self.genotype_hash} c{self.channels} n{self.cells_per_level} s{self.stem_channels}"
