"""How many distinct bytes one inference of a model touches: the cache flush its blocks follow.

Counted from the blocks in deploy form: every parameter (read once per inference) plus the largest
block's activations (every leaf module's output): runtimes plan activations into one reused arena
(ONNX Runtime's memory patterns, ExecuTorch's memory planning), so consecutive blocks write the
same addresses and the live set is about one block's, not the sum over blocks. Layout copies a
runtime adds are not counted: the figure decides whether, and how much, a model outgrows the
last-level cache (``profilers.cache``), not the exact byte.
"""

from __future__ import annotations

from typing import Sequence

import torch

from lut.blocks import BlockSpec


def block_bytes(spec: BlockSpec) -> tuple[int, int]:
    """(parameter bytes, bytes of every leaf module's output) of the block at batch 1."""
    module = spec.build().eval()
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    acts = [0]

    def count(_module, _inputs, output):
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if torch.is_tensor(t):
                acts[0] += t.numel() * t.element_size()

    leaves = [m for m in module.modules() if not list(m.children())] or [module]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            module(*spec.example_inputs())
    finally:
        for h in hooks:
            h.remove()
    return int(params), int(acts[0])


def model_bytes(blocks: Sequence[BlockSpec]) -> int:
    """Distinct bytes one inference of the model made of ``blocks`` touches: all parameters plus the
    largest block's activations."""
    sizes = [block_bytes(b) for b in blocks]
    return sum(p for p, _ in sizes) + max((a for _, a in sizes), default=0)


def model_macs(module, inputs: tuple) -> int:
    """Multiply-accumulates of one inference of ``module`` on ``inputs``: every convolution and
    linear layer, counted from the output shapes a forward pass gives (the ops that dominate a
    vision model's time; pooling, activations and resizes are left out)."""
    import torch.nn as nn

    total = [0]

    def count(m, _inputs, output):
        if isinstance(m, nn.Conv2d):
            total[0] += output.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total[0] += output.numel() * m.in_features

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return int(total[0])
