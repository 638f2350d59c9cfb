"""Export to LiteRT (TensorFlow Lite): one ``.tflite`` flatbuffer via ``litert_torch.convert``, run with
the LiteRT interpreter and its XNNPACK delegate.

The converted graph keeps PyTorch's NCHW interface and works in NHWC inside: a ``TRANSPOSE`` at
each input and output (layout conversions that a latency table of blocks pays at every block
boundary, and a whole model only once). The interpreter applies the XNNPACK delegate when it is
created; ops XNNPACK rejects stay on LiteRT's reference kernels, several times slower, so the
export reports which ops the delegate took (:func:`xnnpack_delegation`) and warns when a
convolution is left outside it.

Conversion takes seconds per model (~8-20 s here): a latency table converts its blocks ahead of
timing in worker processes (``lut.measure.BlockMeter.export_ahead``), and the ``litert`` profiler
caches conversions by module structure.
"""

from __future__ import annotations

import os
from pathlib import Path

from deploy.errors import ExportError
from deploy.fileio import atomic_write_bytes, first_line
from deploy.formats import Format

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D")


def export_tflite(model: "torch.nn.Module", example_inputs: tuple, path) -> Path:
    """Convert ``model`` (eval mode) to a ``.tflite`` at ``path`` (static shapes of ``example_inputs``).

    Atomic: on failure nothing is left at ``path``. Raises :class:`ExportError` starting
    ``tflite: `` naming the stage.
    """
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")  # a progress tree per conversion otherwise
    try:
        import litert_torch
    except ImportError as e:
        raise ExportError(f"tflite: litert-torch not installed ({first_line(e)}); pip install 'hwnas[litert]'") from e
    path = Path(path)
    if not isinstance(example_inputs, tuple):
        raise ExportError(f"tflite: example_inputs must be a tuple of tensors, got {type(example_inputs).__name__}")
    was_training = model.training
    model.eval()
    stage = "litert_torch.convert"
    try:
        converted = litert_torch.convert(model, example_inputs)
        stage = "serialising the flatbuffer"
        data = converted.model_content()
    except OSError:
        raise
    except Exception as e:  # the converter raises many types; name the stage and cause
        raise ExportError(f"tflite: {stage} failed: {first_line(e, with_type=True)}") from e
    finally:
        model.train(was_training)
    atomic_write_bytes(path, data)
    return path


# ------------------------------------------------------------------------------ runtime
def interpreter(path, threads: int = 1, xnnpack: bool = True):
    """A LiteRT interpreter for ``path`` with tensors allocated; XNNPACK (the default delegate of
    the built-in op resolver) with ``threads`` threads, or reference kernels only."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=str(path), num_threads=int(threads), experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def xnnpack_delegation(it) -> dict:
    """Which ops of the graph the XNNPACK delegate took, read from the interpreter's nodes.

    After delegation the node list holds the original ops followed by one ``DELEGATE`` node per
    delegated partition; an original op still executed is one whose output some executed node
    (or the graph output) reads. Walking back from the outputs through delegate nodes and
    executed ops finds them; every other original op runs inside XNNPACK.
    """
    ops = it._get_ops_details()  # the interpreter's only view of its nodes
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    originals = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): o for o in originals for t in o["outputs"]}
    made_by_delegate = {int(t): d for d in delegates for t in d["outputs"]}
    executed: set[int] = set()
    stack, seen = [int(d["index"]) for d in it.get_output_details()], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor < 0:
            continue
        seen.add(tensor)
        node = made_by_delegate.get(tensor)
        if node is None:
            node = producer.get(tensor)
            if node is None:
                continue  # a graph input or a constant
            executed.add(int(node["index"]))
        stack.extend(int(t) for t in node["inputs"])
    inside, outside = {}, {}
    for o in originals:
        bucket = outside if int(o["index"]) in executed else inside
        bucket[o["op_name"]] = bucket.get(o["op_name"], 0) + 1
    return {
        "delegate_nodes": len(delegates),
        "delegated_ops": dict(sorted(inside.items())),
        "non_delegated_ops": dict(sorted(outside.items())),
        "convolutions_in_xnnpack": not any(op in outside for op in CONV_OPS) and any(op in inside for op in CONV_OPS),
        "fully_delegated": bool(delegates) and not outside,
    }


def run_tflite(path, inputs, threads: int = 1) -> list:
    """Outputs of the ``.tflite`` at ``path`` for ``inputs`` (tensors), LiteRT interpreter + XNNPACK."""
    it = interpreter(path, threads)
    details = it.get_input_details()
    if len(details) != len(inputs):
        raise ExportError(f"tflite: {path} has {len(details)} inputs, {len(inputs)} given")
    for d, x in zip(details, inputs):
        it.set_tensor(d["index"], x.numpy())
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def check_tflite(path, reference, inputs, tolerance: float = 1e-4):
    from deploy.parity import compare

    return compare("litert", reference, run_tflite(path, inputs), tolerance)


def _export_format(model, example_inputs, target, *, precision, out_dir) -> dict:
    from importlib.metadata import version

    export_tflite(model, example_inputs, target)
    delegation = xnnpack_delegation(interpreter(target))
    details = {"delegation": delegation, "litert_torch": version("litert-torch")}
    if not delegation["fully_delegated"]:
        # a valid model, but ops outside XNNPACK run on reference kernels: say so in the row
        details["warning"] = f"ops outside XNNPACK (reference kernels): {delegation['non_delegated_ops']}"
    return details


FORMAT = Format("tflite", "model.tflite", _export_format, check_tflite, aliases=("litert", "tfl"),
                extra="litert", runtime="litert")
