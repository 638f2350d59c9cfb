"""hwnas — hardware-aware NAS for salient object detection (iNAS) and differentiable cell search."""

__version__ = "0.1.0"
