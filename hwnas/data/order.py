"""Deterministic data order: a pure function of (seed, epoch, rank, world size).

Resuming after a kill and multi-process training both rely on this: no sampler state needs to be
saved, and every rank knows which samples every other rank reads.
"""

from __future__ import annotations

import numpy as np


def epoch_indices(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's sample indices for ``epoch``: a seeded permutation, padded by wrapping around to a
    multiple of ``world_size`` (as ``DistributedSampler`` does), then every ``world_size``-th entry."""
    if n <= 0:
        return []
    perm = np.random.default_rng([seed, epoch, 0x5EED]).permutation(n)
    total = -(-n // world_size) * world_size
    perm = np.resize(perm, total)  # wraps around
    return perm[rank::world_size].tolist()
