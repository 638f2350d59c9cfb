"""Export to ExecuTorch: a ``.pte`` program lowered to the XNNPACK delegate.

``torch.export.export`` → ``executorch.exir.to_edge_transform_and_lower(partitioner=
[XnnpackPartitioner()])`` → ``to_executorch()`` → the program buffer. Ops the partitioner
leaves behind run on ExecuTorch's portable kernels, which are about 50x slower, so the lowering
is inspected (:func:`delegation_summary`) and the count of non-delegated compute ops is part of
what the exporter reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from deploy.cia_cache import cached_cia_ops
from deploy.errors import ExportError
from deploy.formats import Format
from deploy.fileio import atomic_write_bytes, first_line

# Graph plumbing that is not computation: it never runs as a kernel, so it never counts as a
# "portable fallback" op.
_PLUMBING = {"getitem", "executorch_call_delegate", "alloc", "view_copy"}


@dataclass
class DelegationSummary:
    """How much of the lowered graph runs inside XNNPACK."""

    delegate_calls: int  # number of lowered subgraphs (call_delegate nodes)
    delegated_ops: int  # edge ops inside those subgraphs
    backends: list[str] = field(default_factory=list)
    non_delegated_ops: dict[str, int] = field(default_factory=dict)  # op → count, on activations, outside any delegate
    constant_ops: dict[str, int] = field(default_factory=dict)  # op → count, outside, on constants only

    @property
    def fully_delegated(self) -> bool:
        return self.delegate_calls > 0 and not self.non_delegated_ops

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fully_delegated"] = self.fully_delegated
        return d


def export_pte(model: nn.Module, example_inputs: tuple, path) -> Path:
    """Export ``model`` (eval mode) to an XNNPACK-lowered ExecuTorch ``.pte`` at ``path``; returns the path.

    The file appears atomically (nothing at ``path`` on failure). Raises :class:`ExportError`
    naming the stage that failed. Use :func:`export_pte_with_summary` to also get the delegation.
    """
    return export_pte_with_summary(model, example_inputs, path)[0]


def export_pte_with_summary(model: nn.Module, example_inputs: tuple, path) -> tuple[Path, DelegationSummary]:
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as e:
        raise ExportError(f"executorch: not installed ({e}); pip install 'hwnas[executorch]'") from e

    path = Path(path)
    if not isinstance(example_inputs, tuple):
        raise ExportError(f"executorch: example_inputs must be a tuple of tensors, got {type(example_inputs).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        stage = "torch.export.export"
        try:
            with torch.no_grad():
                exported = torch.export.export(model, example_inputs, strict=False)
            stage = "to_edge_transform_and_lower (XNNPACK)"
            with cached_cia_ops():  # the lowering decomposes three times per artifact (deploy.cia_cache)
                edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
            edge_program = edge.exported_program()
            user_inputs = {spec.arg.name for spec in edge_program.graph_signature.input_specs
                           if spec.kind == torch.export.graph_signature.InputKind.USER_INPUT}
            summary = delegation_summary(edge_program.graph_module, user_inputs)
            stage = "to_executorch"
            program = edge.to_executorch()
            buffer = program.buffer
        except OSError:  # disk full etc.: reported as such by the CLI
            raise
        except Exception as e:  # the toolchain raises many types; name the stage and cause
            raise ExportError(f"executorch: {stage} failed: {first_line(e, with_type=True)}") from e
    finally:
        model.train(was_training)
    atomic_write_bytes(path, buffer)
    return path, summary


def delegation_summary(graph_module: torch.fx.GraphModule, user_inputs: set[str] | None = None) -> DelegationSummary:
    """Count delegate calls, the ops inside them, and the ops left outside any delegate.

    An op outside the delegate whose inputs are all constants (e.g. the int→float cast of a
    lifted scalar in ``x / 3``) runs on a handful of scalars, not on activations; such ops are
    listed as ``constant_ops`` and do not count as portable fallback. ``user_inputs`` names the
    placeholders fed at run time (default: every placeholder that is not a lifted constant,
    parameter or buffer, judged by name).
    """
    calls, inside, backends, outside, constant = 0, 0, [], {}, {}
    live: set[str] = set()  # nodes whose value depends on a run-time input
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            is_input = node.name in user_inputs if user_inputs is not None else not node.name.startswith(
                ("_lifted_tensor_constant", "p_", "b_", "c_", "_param_constant", "_tensor_constant"))
            if is_input:
                live.add(node.name)
            continue
        if node.op != "call_function":
            continue
        depends = any(getattr(a, "name", None) in live for a in node.all_input_nodes)
        if depends:
            live.add(node.name)
        name = _op_name(node.target)
        if name == "executorch_call_delegate":
            calls += 1
            lowered = getattr(graph_module, node.args[0].target)
            backends.append(getattr(lowered, "backend_id", "?"))
            original = getattr(lowered, "original_module", None)
            if original is not None:
                inside += sum(1 for n in original.graph.nodes if n.op == "call_function" and _op_name(n.target) not in _PLUMBING)
        elif name not in _PLUMBING:
            bucket = outside if depends else constant
            bucket[name] = bucket.get(name, 0) + 1
    return DelegationSummary(calls, inside, sorted(set(backends)), outside, constant)


def pte_delegation(path) -> dict:
    """What the saved program itself says: the backends its ``forward`` delegates to."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    data = Path(path).read_bytes()
    prog = deserialize_pte_binary(data)
    prog = getattr(prog, "program", prog)
    plan = prog.execution_plan[0]
    backends = [d.id for d in plan.delegates]
    non_delegate = sorted({op.name for op in plan.operators})
    return {"delegates": backends, "operators": non_delegate}


def _op_name(target) -> str:
    name = getattr(target, "__name__", str(target))
    # edge ops print as e.g. "aten.convolution.default"; keep the op, drop the overload
    return name.split(".")[-2] if name.count(".") >= 2 else name




# ------------------------------------------------------------------------------ runtime and registration
def run_pte(path, inputs) -> list:
    """Outputs of the ``.pte`` program at ``path`` for ``inputs`` (tensors), ExecuTorch Python runtime."""
    from executorch.runtime import Runtime

    from deploy.parity import flatten_outputs

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return flatten_outputs(list(method.execute(tuple(inputs))))


def check_pte(path, reference, inputs, tolerance: float = 1e-4):
    from deploy.parity import compare

    return compare("executorch-xnnpack", reference, run_pte(path, inputs), tolerance)


def _export_format(model, example_inputs, target, *, precision, out_dir) -> dict:
    _, summary = export_pte_with_summary(model, example_inputs, target)
    details = {"delegation": summary.to_dict()}
    if not summary.fully_delegated:
        # still a valid program, but portable kernels are ~50x slower: say so in the row
        details["warning"] = f"ops outside XNNPACK (portable kernels): {summary.non_delegated_ops}"
    return details


FORMAT = Format("executorch", "model.pte", _export_format, check_pte, aliases=("pte", "xnnpack"),
                extra="executorch", runtime="executorch-xnnpack")
