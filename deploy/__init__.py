"""Re-parameterization and export to ONNX / ExecuTorch / Core ML / TensorRT / OpenVINO / LiteRT, each with
parity checks in its own runtime. Formats are registrations in ``deploy.formats``.

Imports of heavy backends happen inside the exporters, never at ``import deploy``.
"""

from deploy.api import FormatResult, export
from deploy.errors import ExportError
from deploy.formats import Format, parse_formats, parse_precisions, register
from deploy.reparam import Reparameterizable, fold_bn, fuse_conv_bn, pad_kernel, reparameterize

__all__ = [
    "ExportError", "Format", "FormatResult", "Reparameterizable", "export", "fold_bn", "fuse_conv_bn",
    "pad_kernel", "parse_formats", "parse_precisions", "register", "reparameterize",
]
