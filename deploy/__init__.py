"""Re-parameterization and export to ONNX / ExecuTorch / Core ML / TensorRT / OpenVINO / LiteRT, each with
parity checks in its own runtime. Formats are registrations in ``deploy.formats``.

Imports of heavy backends happen inside the exporters, never at ``import deploy``; the names below
are loaded on first use, so a runtime-only host (``profilers.runner`` measuring a ``.tflite`` or an
OpenVINO IR) can import ``deploy.tflite_export`` / ``deploy.openvino_export`` without torch.
"""

from importlib import import_module

_EXPORTS = {
    "ExportError": "deploy.errors",
    "Format": "deploy.formats", "parse_formats": "deploy.formats", "parse_precisions": "deploy.formats",
    "register": "deploy.formats",
    "FormatResult": "deploy.api", "export": "deploy.api",
    "Reparameterizable": "deploy.reparam", "fold_bn": "deploy.reparam", "fuse_conv_bn": "deploy.reparam",
    "pad_kernel": "deploy.reparam", "reparameterize": "deploy.reparam",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'deploy' has no attribute {name!r}")
