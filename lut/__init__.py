"""Latency lookup tables: build (resumable), store (Parquet + metadata), predict, calibrate, validate.

``lut`` knows the block protocol (:class:`BlockSpec`), never a search space: ``hwnas`` turns
architectures into block specs, ``lut`` measures, stores and sums them.
"""

from lut.blocks import BlockSpec
from lut.errors import LUTError
from lut.table import LatencyTable

__all__ = ["BlockSpec", "LUTError", "LatencyTable"]
