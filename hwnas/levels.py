"""The 5-level feature pyramid every iNAS SOD network is built on, and the head's fusion choices.

A backbone (:mod:`hwnas.backbones`) emits 5 feature maps at strides 2, 4, 8, 16, 32 (level 1 =
finest); the searchable transport and decoder (:mod:`hwnas.model`) fuse them. This module holds
what both sides and the search space share, with no dependency on any of them (so no import
cycle can run through it).
"""

from __future__ import annotations

import itertools
from typing import Sequence

NUM_LEVELS = 5
TOTAL_STRIDE = 2**NUM_LEVELS  # stride of level 5: input sides divide by this


def subsets(items: Sequence[int], must: Sequence[int] = ()) -> list[tuple[int, ...]]:
    """All non-empty subsets of ``items`` that contain every element of ``must`` (sorted tuples)."""
    free = [x for x in items if x not in must]
    out = []
    for r in range(len(free) + 1):
        for combo in itertools.combinations(free, r):
            s = tuple(sorted((*must, *combo)))
            if s:
                out.append(s)
    return out


def transport_input_choices(level: int) -> list[tuple[int, ...]]:
    """Transport level ``level`` aggregates any subset of the 5 levels that includes itself."""
    return subsets(range(1, NUM_LEVELS + 1), must=(level,))


def decoder_input_choices(level: int) -> list[tuple[int, ...]]:
    """Decoder level i: own level and level i+1 fixed; any of the coarser levels i+2..5 optional."""
    fixed = (level,) if level == NUM_LEVELS else (level, level + 1)
    return subsets(range(level, NUM_LEVELS + 1), must=fixed)
