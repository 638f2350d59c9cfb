"""Re-parameterization and export to ONNX / ExecuTorch / Core ML / TensorRT, each with parity checks.

Imports of heavy backends happen inside the exporters, never at ``import deploy``.
"""

from deploy.reparam import Reparameterizable, fold_bn, fuse_conv_bn, pad_kernel, reparameterize

__all__ = ["Reparameterizable", "fold_bn", "fuse_conv_bn", "pad_kernel", "reparameterize"]
