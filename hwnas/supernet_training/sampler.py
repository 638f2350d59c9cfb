"""Deterministic batches: step ``s`` of rank ``r`` always reads the same images, augmented the same way.

Everything random about the data is a function of ``(seed, epoch, index)`` (:func:`hwnas.data.epoch_indices`
shards each epoch's order over the ranks as ``DistributedSampler`` would), so a run resumed at step
``s`` reads exactly what an uninterrupted run would have read from step ``s`` on.
"""

from __future__ import annotations

import torch

from hwnas.errors import DataError


class StepBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` keys for steps ``start .. end-1`` of this rank."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world_size: int, start: int, end: int):
        from hwnas.data import epoch_indices

        self._indices = lambda epoch: epoch_indices(n, seed, epoch, rank, world_size)
        self.per_epoch = len(self._indices(0)) // batch_size
        if self.per_epoch == 0:
            raise DataError(
                f"{n} training images are fewer than one batch ({batch_size} x {world_size} processes); "
                "lower --batch-size"
            )
        self.batch_size, self.start, self.end = batch_size, start, end

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        cached_epoch, order = -1, []
        for step in range(self.start, self.end):
            epoch, b = divmod(step, self.per_epoch)
            if epoch != cached_epoch:
                cached_epoch, order = epoch, self._indices(epoch)
            yield [(epoch, i) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]


class EpochKeyed(torch.utils.data.Dataset):
    """Lets a DataLoader worker fetch item ``i`` as augmented in ``epoch`` (keys are ``(epoch, i)``)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        self.dataset.set_epoch(epoch)
        return self.dataset[i]
