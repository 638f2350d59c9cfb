"""Export to OpenVINO IR: ``model.xml`` (graph) + ``model.bin`` (weights), via ``openvino.convert_model``.

``openvino.convert_model(model, example_input=...)`` traces the eval-mode module (static shapes:
those of the example) and ``openvino.save_model`` writes the pair. Weights stay fp32 unless
``fp16`` is asked for: ``save_model`` compresses weights to fp16 by default, which would put
~1e-3 differences into a parity check of an fp32 artifact.

``frontend="onnx"`` converts a TorchScript ONNX export (``deploy.onnx_export.export_torchscript_onnx``)
with OpenVINO's ONNX frontend instead: the same operations and outputs (a test compares them),
somewhat faster (inas-sod context graphs at 320 px, one torch thread: 0.42 against 0.50 s each),
for the ~900 blocks of a latency table; ``hwnas export`` keeps the PyTorch frontend. Inputs are
named ``input`` / ``input0``…, outputs ``output`` / ``output0``…, like the other formats.

The parity run compiles for the CPU plugin with an fp32 inference precision: on CPUs with AMX or
AVX512-BF16 the plugin's default is bf16, which would fail an fp32 tolerance for the wrong reason.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from deploy.errors import ExportError
from deploy.fileio import atomic_path, first_line
from deploy.formats import Format, input_names, output_names

PRECISIONS = ("fp32", "fp16")
KEEP_TELEMETRY_ENV = "HWNAS_OPENVINO_TELEMETRY"  # =1: leave OpenVINO's conversion telemetry as it is
FRONTENDS = ("pytorch", "onnx")


@contextlib.contextmanager
def _conversion_telemetry_off():
    """OpenVINO's converter sends a telemetry event per conversion, each from a new
    ``multiprocessing`` process that it joins with a timeout (``openvino_telemetry``). In a table
    build's spawned export workers every such process is a fresh interpreter: inas-sod blocks at
    320 px exported at 2.6 s per block with 2 workers, 0.35 s without, and a table build would
    send ~1900 events. The converter declines telemetry when ``CI=true`` (its documented CI switch, read at each
    conversion), so that is set for the call only; ``HWNAS_OPENVINO_TELEMETRY=1`` keeps the default."""
    from unittest import mock

    with mock.patch.dict(os.environ, {} if os.environ.get(KEEP_TELEMETRY_ENV) == "1" else {"CI": "true"}):
        yield


def export_openvino(model: "torch.nn.Module", example_inputs: tuple, path, precision: str = "fp32",
                    frontend: str = "pytorch") -> Path:
    """Convert ``model`` (eval mode) to OpenVINO IR at ``path`` (``.xml``; the ``.bin`` beside it).

    Both files appear atomically, the weights first: a crash leaves either the old pair, or a new
    ``.bin`` beside the old ``.xml``'s absence — never an ``.xml`` without its weights. Raises
    :class:`ExportError` starting ``openvino: `` naming the stage.
    """
    try:
        import openvino as ov
    except ImportError as e:
        raise ExportError(f"openvino: not installed ({first_line(e)}); pip install 'hwnas[openvino]'") from e
    if precision not in PRECISIONS:
        raise ExportError(f"openvino: precision {precision!r} not supported; allowed: {list(PRECISIONS)}")
    if frontend not in FRONTENDS:
        raise ExportError(f"openvino: frontend {frontend!r} unknown; allowed: {list(FRONTENDS)}")
    path = Path(path)
    if path.suffix != ".xml":
        raise ExportError(f"openvino: an IR is saved as NAME.xml + NAME.bin, got {path.name}")
    if not isinstance(example_inputs, tuple):
        raise ExportError(f"openvino: example_inputs must be a tuple of tensors, got {type(example_inputs).__name__}")
    was_training = model.training
    model.eval()
    stage = "openvino.convert_model"
    try:
        with _conversion_telemetry_off():
            converted = _convert(ov, model, example_inputs, path.parent, frontend)
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


def _convert(ov, model, example_inputs: tuple, folder: Path, frontend: str):
    """The module as an OpenVINO model, through the PyTorch frontend or a TorchScript ONNX export
    (static shapes) read by the ONNX frontend."""
    if frontend == "pytorch":
        import torch

        with torch.no_grad():
            # ``input`` fixes static shapes (without it the IR is [?,3,?,?] and the CPU plugin
            # compiles a dynamic-shape graph: slower, and not the shape a table measures)
            return ov.convert_model(model, example_input=example_inputs,
                                    input=[ov.PartialShape(list(x.shape)) for x in example_inputs])
    import tempfile

    from deploy.onnx_export import export_torchscript_onnx

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ov-onnx-", dir=folder) as tmp:
        onnx_path = export_torchscript_onnx(model, example_inputs, Path(tmp) / "model.onnx")
        return ov.convert_model(str(onnx_path))  # weights are read into the model: the file may go


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
