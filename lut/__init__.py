"""Latency lookup tables: build (resumable), store (Parquet + metadata), predict, validate."""

from lut.blocks import BlockSpec

__all__ = ["BlockSpec"]
