"""Export to ONNX: one self-contained ``.onnx`` file (weights embedded), static shapes, eval mode.

``torch.onnx.export(..., dynamo=True)`` (needs ``onnxscript``) writes large weights to a side
file ``<name>.onnx.data`` by default; a model file that silently depends on a neighbour breaks
when it is copied alone, so the exporter re-saves the graph with every tensor inlined.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from deploy.errors import ExportError

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
            n_out = _count_outputs(model(*example_inputs))
        input_names = ["input"] if len(example_inputs) == 1 else [f"input{i}" for i in range(len(example_inputs))]
        output_names = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]
        with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=path.parent) as tmp:
            raw = Path(tmp) / "raw.onnx"
            # torch.onnx logs one warning per missing torchvision op on every export: noise here
            logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    program = torch.onnx.export(
                        model, example_inputs, dynamo=True, opset_version=opset,
                        input_names=input_names, output_names=output_names,
                        external_data=False, verbose=False, optimize=True,
                    )
                    program.save(str(raw), external_data=False)
            except ExportError:
                raise
            except Exception as e:  # the exporter raises many types; name the format and cause
                raise ExportError(f"onnx: torch.onnx.export failed: {_first_line(e)}") from e
            proto = onnx.load(str(raw), load_external_data=True)
            if proto.ByteSize() > _PROTOBUF_LIMIT_BYTES:
                raise ExportError("onnx: model exceeds the 2 GiB protobuf limit; a self-contained file is impossible")
            try:
                onnx.checker.check_model(proto)
            except Exception as e:
                raise ExportError(f"onnx: exported graph fails onnx.checker: {_first_line(e)}") from e
            staged = Path(tmp) / "model.onnx"
            onnx.save(proto, str(staged), save_as_external_data=False)
            os.replace(staged, path)
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


def _count_outputs(out) -> int:
    if isinstance(out, torch.Tensor):
        return 1
    if isinstance(out, (list, tuple)):
        return sum(_count_outputs(o) for o in out)
    raise ExportError(f"onnx: model output must be a tensor or a list/tuple of tensors, got {type(out).__name__}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
