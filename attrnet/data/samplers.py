"""Training samplers whose order depends only on (seed, epoch), so resumed runs repeat it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import RandomSampler

from attrnet.seeding import derived_seed


class EpochShuffleSampler(RandomSampler):
    """A fresh permutation of ``range(num_samples)`` each epoch, drawn from (seed, epoch) alone.

    Lightning calls ``set_epoch`` before each training epoch, so the order of epoch ``e`` is the
    same in an uninterrupted run and in one resumed at ``e``; it does not consume the global
    torch random state. It is a ``RandomSampler`` by type, so under DDP Lightning treats the
    loader as shuffled and injects its own ``DistributedSampler``, also seeded by
    (seed, epoch); an ``IdentityBatchSampler`` wrapping it is re-created around that one.
    """

    def __init__(self, num_samples: int, seed: int = 0, epoch: int = 0) -> None:
        if num_samples < 1:
            raise ValueError(f"EpochShuffleSampler needs at least one sample, got {num_samples}")
        super().__init__(range(int(num_samples)))
        self.seed = int(seed)
        self.epoch = int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())
