"""Export to Core ML: an ``.mlpackage`` (ML Program) converted from a ``torch.export`` program.

``coremltools.convert(..., convert_to="mlprogram")`` runs on Linux and writes the package, but
prediction needs the Core ML framework, i.e. macOS: off macOS the spec is checked (input and
output names, shapes, data types) and parity is skipped with that reason. coremltools 9.0 breaks
on ``interpolate(size=...)`` graphs with numpy >= 2.4, which is why the project pins numpy < 2.4.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch
import torch.nn as nn

from deploy.errors import ExportError
from deploy.formats import Format, count_outputs, input_names, output_names
from deploy.fileio import atomic_path, first_line

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
    names = input_names(len(example_inputs))
    was_training = model.training
    model.eval()
    stage = "torch.export.export"
    try:
        with torch.no_grad():
            n_out = count_outputs(model(*example_inputs), "coreml")
            program = torch.export.export(model, example_inputs, strict=False).run_decompositions({})
        out_names = output_names(n_out)
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
        raise ExportError(f"coreml: {stage} failed: {first_line(e, with_type=True)}") from e
    finally:
        model.train(was_training)
    with atomic_path(path) as staged:  # a directory: the old package is replaced whole
        mlmodel.save(str(staged))
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


# ------------------------------------------------------------------------------ parity and registration
def check_coreml(path, reference, inputs, tolerance: float = 1e-4):
    from deploy.parity import SKIPPED, Parity, compare, ordered_outputs

    ok, reason = coreml_prediction_status()
    if not ok:
        return Parity("coreml", SKIPPED, tolerance, reason=reason)
    result = predict_coreml(path, {n: x.numpy() for n, x in zip(input_names(len(inputs)), inputs)})
    return compare("coreml", reference, ordered_outputs(result), tolerance)


def _export_format(model, example_inputs, target, *, precision, out_dir) -> dict:
    export_coreml(model, example_inputs, target, precision=precision)
    spec = coreml_spec_summary(target)
    expected_in = [list(x.shape) for x in example_inputs]
    if [i["shape"] for i in spec["inputs"]] != expected_in:
        raise ExportError(f"coreml: converted inputs {spec['inputs']} do not match the export shapes {expected_in}")
    return {"spec": spec}


FORMAT = Format("coreml", "model.mlpackage", _export_format, check_coreml, aliases=("mlpackage",),
                precisions=PRECISIONS, extra="coreml", runtime="coreml")


