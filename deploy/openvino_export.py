"""Export to OpenVINO IR: ``model.xml`` (graph) + ``model.bin`` (weights), via ``openvino.convert_model``.

``openvino.convert_model(model, example_input=...)`` traces the eval-mode module (static shapes:
those of the example) and ``openvino.save_model`` writes the pair. Weights stay fp32 unless
``fp16`` is asked for: ``save_model`` compresses weights to fp16 by default, which would put
~1e-3 differences into a parity check of an fp32 artifact. Inputs are named ``input`` /
``input0``…, outputs ``output`` / ``output0``…, like the other formats.

The parity run compiles for the CPU plugin with an fp32 inference precision: on CPUs with AMX or
AVX512-BF16 the plugin's default is bf16, which would fail an fp32 tolerance for the wrong reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from deploy.errors import ExportError
from deploy.fileio import atomic_path, first_line
from deploy.formats import Format, input_names, output_names

PRECISIONS = ("fp32", "fp16")


def export_openvino(model: "torch.nn.Module", example_inputs: tuple, path, precision: str = "fp32") -> Path:
    """Convert ``model`` (eval mode) to OpenVINO IR at ``path`` (``.xml``; the ``.bin`` beside it).

    Both files appear atomically, the weights first: a crash leaves either the old pair, or a new
    ``.bin`` beside the old ``.xml``'s absence — never an ``.xml`` without its weights. Raises
    :class:`ExportError` starting ``openvino: `` naming the stage.
    """
    import torch

    try:
        import openvino as ov
    except ImportError as e:
        raise ExportError(f"openvino: not installed ({first_line(e)}); pip install 'hwnas[openvino]'") from e
    if precision not in PRECISIONS:
        raise ExportError(f"openvino: precision {precision!r} not supported; allowed: {list(PRECISIONS)}")
    path = Path(path)
    if path.suffix != ".xml":
        raise ExportError(f"openvino: an IR is saved as NAME.xml + NAME.bin, got {path.name}")
    if not isinstance(example_inputs, tuple):
        raise ExportError(f"openvino: example_inputs must be a tuple of tensors, got {type(example_inputs).__name__}")
    was_training = model.training
    model.eval()
    stage = "openvino.convert_model"
    try:
        with torch.no_grad():
            # ``input`` fixes static shapes (without it the IR is [?,3,?,?] and the CPU plugin
            # compiles a dynamic-shape graph: slower, and not the shape a table measures)
            converted = ov.convert_model(model, example_input=example_inputs,
                                         input=[ov.PartialShape(list(x.shape)) for x in example_inputs])
        stage = "naming inputs and outputs"
        for port, name in zip(converted.inputs, input_names(len(converted.inputs))):
            port.get_tensor().set_names({name})
        for port, name in zip(converted.outputs, output_names(len(converted.outputs))):
            port.get_tensor().set_names({name})
    except ExportError:
        raise
    except Exception as e:  # the frontend raises many types; name the stage and cause
        raise ExportError(f"openvino: {stage} failed: {openvino_error_line(e)}") from e
    finally:
        model.train(was_training)
    if len(converted.inputs) != len(example_inputs):
        raise ExportError(f"openvino: converted model has {len(converted.inputs)} inputs, the module takes {len(example_inputs)}")
    weights = path.with_suffix(".bin")
    with atomic_path(path) as staged_xml, atomic_path(weights) as staged_bin:
        try:
            ov.save_model(converted, str(staged_xml), compress_to_fp16=precision == "fp16")
        except Exception as e:
            if isinstance(e, OSError):
                raise
            raise ExportError(f"openvino: openvino.save_model failed: {openvino_error_line(e)}") from e
        os.replace(staged_xml.with_suffix(".bin"), staged_bin)  # committed first (inner context)
    return path


def openvino_error_line(exc: BaseException) -> str:
    """The cause in an OpenVINO exception text: its first lines only name C++ source locations
    (``Exception from src/inference/src/cpp/core.cpp:84:``); the first other line says what failed."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith("Exception from "):
            return line
    return first_line(exc, with_type=True)


# ------------------------------------------------------------------------------ runtime and registration
CPU_PARITY_CONFIG = {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"}


def run_openvino(path, inputs, config: dict | None = None) -> list:
    """Outputs of the IR at ``path`` for ``inputs`` (tensors), OpenVINO runtime, CPU plugin."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", dict(config or CPU_PARITY_CONFIG))
    result = compiled.create_infer_request().infer({i: x.numpy() for i, x in enumerate(inputs)})
    return [result[port] for port in compiled.outputs]


def check_openvino(path, reference, inputs, tolerance: float = 1e-4):
    from deploy.parity import compare

    return compare("openvino-cpu", reference, run_openvino(path, inputs), tolerance)


def _export_format(model, example_inputs, target, *, precision, out_dir) -> dict:
    import openvino as ov

    export_openvino(model, example_inputs, target, precision=precision)
    return {"openvino": ov.get_version(), "weights": "fp16-compressed" if precision == "fp16" else "fp32"}


FORMAT = Format("openvino", "model.xml", _export_format, check_openvino, aliases=("ov", "ir"),
                precisions=PRECISIONS, extra="openvino", companions=("model.bin",), runtime="openvino-cpu")
