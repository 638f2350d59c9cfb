"""What a block costs inside a whole model, not alone: its *context* cost.

An isolated block pays boundary work that a whole model does not: ONNX Runtime wraps every
isolated conv block in NCHWc ``ReorderInput`` / ``ReorderOutput`` (12 % of block kernel time on
inas-sod at 320 px, `../shared/probes/ort_reorders.py`), XNNPACK transposes NCHW<->NHWC at its
delegate's edges, every call pays the runtime's per-inference dispatch. A whole model pays those
only where its own layout chain breaks, and the dispatch once.

So a block is also measured *in context*: a 1x1 convolution produces each of its inputs and
consumes each of its outputs (the neighbours every block of these spaces has: convolutions),
except where the block faces the model's own input or output (``BlockSpec.model_input`` /
``model_output``), which keep their real boundary. The runtime then optimizes the block together
with its neighbours, as it does inside a model: boundary conversions it needs there remain (e.g.
a ``ReduceMean`` that has no NCHWc kernel), the ones it does not need disappear. The runtime's own
profiler gives per-node kernel times of that graph; the nodes of the neighbours (and the
conversions at the graph's own edges, which belong to them) are taken out, and the block's share
of the run (its kernels plus a dispatch cost per node: :meth:`Attribution.share_with_dispatch`),
applied to the context graph's wall time less one call's overhead, is its context cost. A model's
prediction is one call's overhead plus its blocks' context costs. Where a model's distinct bytes
outgrow the last-level cache, the context runs follow a cache flush (``profilers.cache``): inside
a 320 px inas-sod model the same kernels ran ~20 % slower than in a block timed over and over in
warm caches. Where the model fits the cache but its other nodes still evict a block's state
(``Profiler.context_after_model_run``: OpenVINO's JIT kernels, XNNPACK's operator state and weights
in L2; on any runtime, a model that outgrows a core's private cache), the context runs follow an
untimed run of the space's smallest model instead (``hwnas.cli.lut._cold_context_plan``).

A block that keeps its input's shape (:func:`keeps_shape`) can be costed without any split: its
context graph with one more copy of it (:func:`in_context_twice`) less the context graph, timed
in the same window and state, is what one such block costs between its neighbours. A runtime whose
``Profiler.context_split`` is ``"marginal"`` (ONNX Runtime) costs those blocks so: on the AMD hosts
its profiler adds microseconds to every node's kernel time, and the profiled share charged an
inas-tiny table's shape-keeping blocks enough to put every model ~10 % high, while one more copy
cost the same inside whole models and in these graphs (``bench/block_insertion.py``).

Backends whose runtime has no per-node profiler reachable from Python get the isolated time less
one call's overhead (the per-inference part of the boundary cost; layout conversions stay in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn as nn

from lut.blocks import BlockSpec

# How a block's inputs are produced in context (recorded in the table: ``lut.measure.latency_model_kind``).
# A block with several inputs sums them (in these spaces: a fusion, the mean of its level's branches).
# Inside a model one of those branches, the same-level one, ends in a convolution that a runtime can
# fold the sum into (ONNX Runtime's NCHWc conv with a Sum input); the others end in a bilinear Resize
# or a MaxPool, which cannot take it. With a bare convolution on every input, ORT folded every input
# sum of a fusion into the neighbours, so the block was charged none: inas-sod at 320 px, three whole
# models ran 59 ``Add`` kernels where their blocks' context graphs kept 27 (``bench/context_ops.py
# --seed 45``). So input 0 gets a bare convolution and every further input a convolution + ReLU: the
# activation, fused into that convolution, keeps the sum out of it as a resample does.
# (A ReLU after every input convolution over-corrected: 82 Adds charged.)
NEIGHBOURS = "first-input-foldable"


def _input_neighbour(channels: int, first: bool) -> nn.Module:
    conv = nn.Conv2d(channels, channels, 1)
    return conv if first else nn.Sequential(conv, nn.ReLU())


class InContext(nn.Module):
    """``block`` between 1x1 convolutions: one per input (unless ``model_input``; see
    :data:`NEIGHBOURS` for inputs after the first) and one per output (unless ``model_output``).
    Channel counts are kept, so the block sees its own shapes."""

    def __init__(self, block: nn.Module, input_channels: Sequence[int], output_channels: Sequence[int],
                 model_input: bool, model_output: bool):
        super().__init__()
        self.block = block
        self.n_outputs = len(output_channels)
        self.ctx_in = nn.ModuleList([] if model_input else
                                    [_input_neighbour(c, i == 0) for i, c in enumerate(input_channels)])
        self.ctx_out = nn.ModuleList([] if model_output else [nn.Conv2d(c, c, 1) for c in output_channels])

    def forward(self, *xs):
        if len(self.ctx_in):
            xs = tuple(conv(x) for conv, x in zip(self.ctx_in, xs))
        y = self.block(*xs)
        ys = tuple(y) if isinstance(y, (tuple, list)) else (y,)
        if len(self.ctx_out):
            ys = tuple(conv(t) for conv, t in zip(self.ctx_out, ys))
        return ys if len(ys) > 1 else ys[0]


def in_context(spec: BlockSpec) -> tuple[nn.Module, tuple]:
    """(module, example inputs) of ``spec``'s block between its neighbours (deploy form, eval)."""
    block = spec.build().eval()
    inputs = spec.example_inputs()
    with torch.no_grad():
        y = block(*inputs)
    ys = tuple(y) if isinstance(y, (tuple, list)) else (y,)
    module = InContext(block, [s[1] for s in spec.input_shapes], [int(t.shape[1]) for t in ys],
                       spec.model_input, spec.model_output).eval()
    return module, inputs


class ThenCopies(nn.Module):
    """A block and then fresh copies of it (their own weights), each fed the output before it once
    per input the copy takes."""

    def __init__(self, block: nn.Module, copies: Sequence[nn.Module], n_inputs: int):
        super().__init__()
        self.block, self.copies, self.n_inputs = block, nn.ModuleList(copies), n_inputs

    def forward(self, *xs):
        y = self.block(*xs)
        for copy in self.copies:
            y = copy(*([y] * self.n_inputs))
        return y


def keeps_shape(spec: BlockSpec) -> bool:
    """Whether one more copy of ``spec``'s block can follow it: every input has the output's shape
    and no side faces the model's own input or output (a fusion, a "same" branch, a stride-1
    MBConv layer of one width)."""
    shapes = {tuple(s) for s in spec.input_shapes}
    if len(shapes) != 1 or spec.model_input or spec.model_output:
        return False
    with torch.no_grad():
        y = spec.build().eval()(*spec.example_inputs())
    return isinstance(y, torch.Tensor) and tuple(y.shape) in shapes


def in_context_twice(spec: BlockSpec, copies: int = 1) -> tuple[nn.Module, tuple]:
    """(module, example inputs) of ``spec``'s context graph (:func:`in_context`) with ``copies`` more
    copies of the block after it: less the context graph itself, what one such block costs between
    its neighbours (per copy), timed without a profiler (``lut.measure.BlockMeter``, where the
    runtime's ``Profiler.context_split`` is ``"marginal"``). Only for blocks that :func:`keeps_shape`."""
    block = ThenCopies(spec.build().eval(), [spec.build().eval() for _ in range(copies)], len(spec.input_shapes))
    inputs = spec.example_inputs()
    c = spec.input_shapes[0][1]
    module = InContext(block, [s[1] for s in spec.input_shapes], [c], False, False).eval()
    return module, inputs


@dataclass(frozen=True)
class Attribution:
    """How the kernel time of a context graph splits between the block and its neighbours."""

    block_us: float
    neighbour_us: float
    block_ops: tuple[str, ...]  # op types of the block's nodes in the runtime's graph, in order
    neighbour_ops: tuple[str, ...]
    block_us_by_op: dict = field(default_factory=dict)  # the block's kernel time per op type (diagnostics)

    @property
    def share(self) -> float:
        total = self.block_us + self.neighbour_us
        return self.block_us / total if total > 0 else 1.0

    def share_with_dispatch(self, run_us: float | None, call_us: float) -> float:
        """The block's share of a context run once the run's time outside kernels is counted too.

        A run is one call's overhead + every node's kernel time + a dispatch cost per node (the
        runtime's step from node to node, which the kernel timestamps miss, and sub-microsecond
        kernels the profiler's whole-microsecond clock rounds down). ``run_us`` (the context run's
        wall time, timed without the profiler) less ``call_us`` less the profiled kernel total,
        spread evenly over the nodes, is that dispatch cost; the block's share is then (its kernels
        + its nodes' dispatch) / (all kernels + all nodes' dispatch). Where the kernels fill the run
        (ONNX Runtime) this is :attr:`share`. On ExecuTorch XNNPACK inas-tiny, where 30-40 % of a
        context run is outside the kernels (ETDump), sharing by kernel time alone charged three whole
        models 18-26 % too much, this split 2-4 % (``bench/context_split.py``); a table built with
        it, 1.8 % MAPE on 30 fresh models. Without ``run_us``: :attr:`share`.
        """
        kernels_us = self.block_us + self.neighbour_us
        nodes = len(self.block_ops) + len(self.neighbour_ops)
        if run_us is None or nodes == 0:
            return self.share
        dispatch_us = max(run_us - call_us - kernels_us, 0.0) / nodes
        total = kernels_us + nodes * dispatch_us
        return (self.block_us + len(self.block_ops) * dispatch_us) / total if total > 0 else 1.0


def _is_conversion(op_type: str) -> bool:
    # ONNX Runtime's NCHWc Reorder*, OpenVINO's Reorder, XNNPACK's Transpose at the delegate's edges
    return op_type.startswith("Reorder") or op_type.startswith("Transpose")


def attribute(profile, has_inputs_ctx: bool, has_outputs_ctx: bool, n_inputs: int = 1, n_outputs: int = 1) -> Attribution:
    """Split a :class:`profilers.base.NodeProfile` of an :class:`InContext` graph.

    Found by the graph's structure, not by names (a runtime renames the nodes it rewrites): the
    input neighbours are the nodes that consume a graph input — a layout conversion and the
    1x1 convolution after it, or the convolution itself — and the output neighbours the nodes that
    produce a graph output — the convolution, or a conversion and the convolution before it.
    Everything else, including conversions between a neighbour and the block, is the block's: a
    model pays those too, since its real neighbours are convolutions as well.

    A runtime that reports its operators in execution order without edges (ExecuTorch's XNNPACK
    delegate, through ETDump) is split by order instead: the conversions before the first and after
    the last computing operator are the graph's edges, the first ``n_inputs`` computing operators
    the input neighbours and the last ``n_outputs`` the output neighbours.
    """
    if profile.nodes and not any(n.inputs or n.outputs for n in profile.nodes):
        return _attribute_in_order(profile, has_inputs_ctx, has_outputs_ctx, n_inputs, n_outputs)
    producer = {t: n for n in profile.nodes for t in n.outputs}
    consumers: dict[str, list] = {}
    for n in profile.nodes:
        for t in n.inputs:
            consumers.setdefault(t, []).append(n)
    neighbours: set[int] = set()  # id() of nodes: names need not be unique
    if has_inputs_ctx:
        for g in profile.graph_inputs:
            for n in consumers.get(g, []):
                neighbours.add(id(n))
                if n.op_type.startswith("Reorder"):
                    neighbours.update(id(c) for t in n.outputs for c in consumers.get(t, []))
    if has_outputs_ctx:
        for g in profile.graph_outputs:
            n = producer.get(g)
            if n is None:
                continue
            neighbours.add(id(n))
            if n.op_type.startswith("Reorder") and n.inputs and n.inputs[0] in producer:
                neighbours.add(id(producer[n.inputs[0]]))
    mine = [n for n in profile.nodes if id(n) not in neighbours]
    theirs = [n for n in profile.nodes if id(n) in neighbours]
    return _split(mine, theirs)


def _attribute_in_order(profile, has_inputs_ctx: bool, has_outputs_ctx: bool, n_inputs: int, n_outputs: int) -> Attribution:
    nodes = list(profile.nodes)
    compute = [i for i, n in enumerate(nodes) if not _is_conversion(n.op_type)]
    neighbours: set[int] = set()
    if compute:
        first, last = compute[0], compute[-1]
        if has_inputs_ctx:
            neighbours.update(range(first))  # conversions at the graph's inputs
            neighbours.update(compute[:n_inputs])
        if has_outputs_ctx:
            neighbours.update(range(last + 1, len(nodes)))  # conversions at the graph's outputs
            neighbours.update(compute[-n_outputs:])
    mine = [n for i, n in enumerate(nodes) if i not in neighbours]
    theirs = [n for i, n in enumerate(nodes) if i in neighbours]
    return _split(mine, theirs)


def _split(mine: list, theirs: list) -> Attribution:
    by_op: dict[str, float] = {}
    for n in mine:
        by_op[n.op_type] = by_op.get(n.op_type, 0.0) + n.kernel_us
    return Attribution(float(sum(n.kernel_us for n in mine)), float(sum(n.kernel_us for n in theirs)),
                       tuple(n.op_type for n in mine), tuple(n.op_type for n in theirs), by_op)
