"""The block protocol: the only thing ``lut`` knows about a search space.

A search space enumerates its architectures as :class:`BlockSpec` values (see
``hwnas.SearchSpace.blocks`` / ``all_blocks``). The LUT measures each distinct ``key`` once and
predicts a whole model as the sum of its blocks' entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

Shape = tuple[int, ...]


@dataclass(frozen=True)
class BlockSpec:
    """One deploy-form block of a model.

    ``key`` is stable across runs and machines and readable (it encodes type, resolutions,
    channels, stride, kernel, fusion width: everything that changes the computation), so two
    blocks with the same key cost the same. ``input_shapes`` are NCHW shapes at batch 1, one per
    positional input of ``build()``'s module. ``build()`` returns a fresh module in deploy form
    (re-parameterized, BN folded) with random weights — latency does not depend on the values.
    A block may return a tuple (several outputs).
    """

    key: str
    kind: str
    input_shapes: tuple[Shape, ...]
    build: Callable[[], nn.Module] = field(compare=False, repr=False)
    # where the block sits in every model it belongs to: its inputs are the model's input (the stem),
    # its outputs the model's outputs (the head). A block's in-model cost is measured with a
    # neighbour on every other side (``lut.context``); these sides keep the runtime's real boundary.
    model_input: bool = False
    model_output: bool = False

    def example_inputs(self, seed: int = 0) -> tuple:
        import torch

        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn(s, generator=g) for s in self.input_shapes)
