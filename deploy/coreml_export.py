"""Export to Core ML: an ``.mlpackage`` (ML Program) converted from a ``torch.export`` program.

``coremltools.convert(..., convert_to="mlprogram")`` runs on Linux and writes the package, but
prediction needs the Core ML framework, i.e. macOS: off macOS the spec is checked (input and
output names, shapes, data types) and parity is skipped with that reason. coremltools 9.0 breaks
on ``interpolate(size=...)`` graphs with numpy >= 2.4, which is why the project pins numpy < 2.4.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from deploy.errors import ExportError

PRECISIONS = ("fp32", "fp16")


def export_coreml(model: nn.Module, example_inputs: tuple, path, precision: str = "fp32") -> Path:
    """Convert ``model`` (eval mode) to an ML Program package at ``path`` (a directory ending in
    ``.mlpackage``); inputs ``input``/``input0``…, outputs ``output``/``output0``…, static shapes.

    ``fp32`` keeps fp32 compute and fp32 I/O so outputs are comparable with PyTorch; ``fp16`` is
    Core ML's default for ML Programs (smaller, faster on the Neural Engine). Atomic: on failure
    nothing is left at ``path``.
    """
    import logging

    # coremltools warns on import about untested torch/sklearn versions; the manifest records versions
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        import coremltools as ct
    except ImportError as e:
        raise ExportError(f"coreml: coremltools not installed ({e}); pip install 'hwnas[coreml]'") from e
    if precision not in PRECISIONS:
        raise ExportError(f"coreml: precision {precision!r} not supported; allowed: {list(PRECISIONS)}")
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ExportError(f"coreml: an ML Program is saved as a .mlpackage directory, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["input"] if len(example_inputs) == 1 else [f"input{i}" for i in range(len(example_inputs))]
    was_training = model.training
    model.eval()
    stage = "torch.export.export"
    try:
        with torch.no_grad():
            n_out = _count_outputs(model(*example_inputs))
            program = torch.export.export(model, example_inputs, strict=False).run_decompositions({})
        out_names = ["output"] if n_out == 1 else [f"output{i}" for i in range(n_out)]
        stage = "coremltools.convert"
        import numpy as np

        mlmodel = ct.convert(
            program,
            convert_to="mlprogram",
            inputs=[ct.TensorType(name=n, shape=tuple(x.shape), dtype=np.float32) for n, x in zip(names, example_inputs)],
            outputs=[ct.TensorType(name=n, dtype=np.float32) for n in out_names],
            compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
            minimum_deployment_target=ct.target.iOS16,
        )
    except ExportError:
        raise
    except Exception as e:  # converters raise many types; name the stage and cause
        raise ExportError(f"coreml: {stage} failed: {_first_line(e)}") from e
    finally:
        model.train(was_training)
    staged = Path(tempfile.mkdtemp(prefix=".mlpackage-", dir=path.parent)) / path.name
    try:
        mlmodel.save(str(staged))
        if path.exists():
            shutil.rmtree(path)
        os.replace(staged, path)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)
    return path


def coreml_spec_summary(path) -> dict:
    """Inputs/outputs (name, shape, data type) and spec version of a saved package; no macOS needed."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(path))
    dtype_names = {v: k for k, v in ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.items()}

    def features(items):
        return [
            {"name": f.name, "shape": [int(d) for d in f.type.multiArrayType.shape],
             "dtype": dtype_names.get(f.type.multiArrayType.dataType, str(f.type.multiArrayType.dataType))}
            for f in items
        ]

    return {
        "specification_version": int(spec.specificationVersion),
        "model_type": spec.WhichOneof("Type"),
        "inputs": features(spec.description.input),
        "outputs": features(spec.description.output),
    }


def coreml_prediction_status() -> tuple[bool, str]:
    if platform.system() != "Darwin":
        return False, f"Core ML prediction needs macOS (this is {platform.system()}); spec checked instead"
    return True, "macOS"


def predict_coreml(path, inputs: dict) -> dict:
    import coremltools as ct

    ok, reason = coreml_prediction_status()
    if not ok:
        raise ExportError(f"coreml: {reason}")
    model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    return model.predict(inputs)


def _count_outputs(out) -> int:
    if isinstance(out, torch.Tensor):
        return 1
    if isinstance(out, (list, tuple)):
        return sum(_count_outputs(o) for o in out)
    raise ExportError(f"coreml: model output must be a tensor or a list/tuple of tensors, got {type(out).__name__}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
