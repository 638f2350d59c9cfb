"""Re-parameterization and export to ONNX / ExecuTorch / Core ML / TensorRT, each with parity checks.

Imports of heavy backends happen inside the exporters, never at ``import deploy``.
"""

from deploy.api import FORMATS, FormatResult, export, parse_formats
from deploy.errors import ExportError
from deploy.reparam import Reparameterizable, fold_bn, fuse_conv_bn, pad_kernel, reparameterize

__all__ = [
    "FORMATS", "ExportError", "FormatResult", "Reparameterizable", "export", "fold_bn", "fuse_conv_bn",
    "pad_kernel", "parse_formats", "reparameterize",
]
