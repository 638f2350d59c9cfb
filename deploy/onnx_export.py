"""Export to ONNX: one self-contained ``.onnx`` file (weights embedded), static shapes, eval mode.

``torch.onnx.export(..., dynamo=True)`` (needs ``onnxscript``) writes large weights to a side
file ``<name>.onnx.data`` by default; a model file that silently depends on a neighbour breaks
when it is copied alone, so the exporter re-saves the graph with every tensor inlined.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from deploy.errors import ExportError
from deploy.formats import Format, count_outputs, input_names, output_names
from deploy.fileio import atomic_path, first_line
from deploy.parity import FP32_TOLERANCE, Parity, compare

# ONNX protobufs cannot exceed 2 GiB; a self-contained file is only possible below that.
_PROTOBUF_LIMIT_BYTES = 2**31 - 1


def export_onnx(model: nn.Module, example_inputs: tuple, path, opset: int | None = None) -> Path:
    """Export ``model`` (in eval mode) to a self-contained ONNX file at ``path``; returns the path.

    Input names are ``input`` (or ``input0``, ``input1``, … for several inputs), output names
    ``output`` / ``output0``…; shapes are static (those of ``example_inputs``). The file appears
    atomically: on any failure nothing is left at ``path``. Raises :class:`ExportError`.
    """
    import onnx

    path = Path(path)
    if not isinstance(example_inputs, tuple):
        raise ExportError(f"onnx: example_inputs must be a tuple of tensors, got {type(example_inputs).__name__}")
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            n_out = count_outputs(model(*example_inputs), "onnx")
        with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=path.parent) as tmp:
            raw = Path(tmp) / "raw.onnx"
            # torch.onnx logs one warning per missing torchvision op on every export: noise here
            logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    program = torch.onnx.export(
                        model, example_inputs, dynamo=True, opset_version=opset,
                        input_names=input_names(len(example_inputs)), output_names=output_names(n_out),
                        external_data=False, verbose=False, optimize=True,
                    )
                    program.save(str(raw), external_data=False)
            except (ExportError, OSError):  # OSError: disk full etc., reported as such by the CLI
                raise
            except Exception as e:  # the exporter raises many types; name the format and cause
                raise ExportError(f"onnx: torch.onnx.export failed: {first_line(e, with_type=True)}") from e
            proto = onnx.load(str(raw), load_external_data=True)
            if proto.ByteSize() > _PROTOBUF_LIMIT_BYTES:
                raise ExportError("onnx: model exceeds the 2 GiB protobuf limit; a self-contained file is impossible")
            try:
                onnx.checker.check_model(proto)
            except Exception as e:
                raise ExportError(f"onnx: exported graph fails onnx.checker: {first_line(e, with_type=True)}") from e
            with atomic_path(path) as staged:
                onnx.save(proto, str(staged), save_as_external_data=False)
    finally:
        model.train(was_training)
    return path


def onnx_opset(path) -> int:
    """The default-domain opset a saved ONNX file declares (what manifests record: the exporter's
    default changes between torch releases, so read it from the file, never assume it)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise ExportError(f"onnx: {path} declares no default-domain opset")


def export_torchscript_onnx(model: nn.Module, example_inputs: tuple, path) -> Path:
    """Fast ONNX export with the TorchScript exporter (``dynamo=False``, ~0.02 s instead of 1-5 s):
    static shapes, weights embedded, constants folded. For latency-table blocks, where hundreds of
    exports would otherwise dominate a build; whole models for users go through :func:`export_onnx`.
    Atomic; raises :class:`ExportError` naming the exporter and cause."""
    path = Path(path)
    example_inputs = tuple(example_inputs)
    was_training = model.training
    try:
        with atomic_path(path) as staged, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model.eval(), example_inputs, str(staged), dynamo=False,
                                  input_names=input_names(len(example_inputs)), do_constant_folding=True)
            except OSError:
                raise
            except Exception as e:  # the exporter raises many types; name the cause
                raise ExportError(f"onnx (torchscript exporter) failed: {first_line(e, with_type=True)}") from e
    finally:
        model.train(was_training)
    return path


# ------------------------------------------------------------------------------ runtime and registration
def run_onnx(path, inputs, threads: int = 1) -> list:
    """Outputs of the ONNX file at ``path`` for ``inputs`` (tensors), ONNX Runtime CPU provider."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs)}
    return list(sess.run(None, feeds))


def check_onnx(path, reference, inputs, tolerance: float = FP32_TOLERANCE) -> Parity:
    return compare("onnxruntime-cpu", reference, run_onnx(path, inputs), tolerance)


def _export_format(model, example_inputs, target, *, precision, out_dir) -> dict:
    export_onnx(model, example_inputs, target)
    return {"opset": onnx_opset(target)}


FORMAT = Format("onnx", "model.onnx", _export_format, check_onnx, runtime="onnxruntime-cpu")


