"""P x K identity batches for metric learning: P identities with K images each per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import BatchSampler, Sampler


class IdentityBatchSampler(BatchSampler):
    """Batches of ``batch_size // num_instances`` identities with ``num_instances`` images each.

    The image order comes from ``sampler`` (a shuffling sampler with ``set_epoch``, or the
    ``DistributedSampler`` Lightning injects under DDP, which then shards the images), so the
    batches are reproducible per epoch and need no generator of their own. Each identity's
    images, in that order, are cut into chunks of K; a short last chunk (an identity with fewer
    than K images left) is completed by repeating its images cyclically. Chunks are then packed
    into batches of P distinct identities. The epoch always has ``len(sampler) // batch_size``
    batches (at least one), so every DDP rank runs the same number of steps; if packing yields
    fewer, the first batches are reused.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        identities: Sequence[int],
        num_instances: int = 4,
        batch_size: int = 64,
    ) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of num_instances "
                f"({num_instances})"
            )
        self.sampler = sampler
        self.identities = list(identities)
        self.num_instances = num_instances
        self.batch_size = batch_size
        self.num_identities = batch_size // num_instances
        distinct = len(set(self.identities))
        if distinct < self.num_identities:
            raise ValueError(
                f"a batch of {self.num_identities} identities x {num_instances} images needs at "
                f"least {self.num_identities} identities, the data has {distinct}"
            )

    def _chunks(self) -> list[tuple[int, list[int]]]:
        """(identity, K indices) chunks, ordered by where each chunk starts in the sampler order."""
        order = list(self.sampler)  # iterated once: the order is the epoch's randomness
        position = {index: rank for rank, index in enumerate(order)}
        by_identity: dict[int, list[int]] = {}
        for index in order:
            by_identity.setdefault(self.identities[index], []).append(index)
        chunks: list[tuple[int, int, list[int]]] = []
        k = self.num_instances
        for identity, indices in by_identity.items():
            for start in range(0, len(indices), k):
                chunk = indices[start : start + k]
                chunk = [chunk[i % len(chunk)] for i in range(k)]
                chunks.append((position[chunk[0]], identity, chunk))
        chunks.sort(key=lambda item: item[0])
        return [(identity, chunk) for _, identity, chunk in chunks]

    def _packed(self) -> list[list[int]]:
        """Pack chunks greedily into batches of P distinct identities."""
        done: list[list[int]] = []
        open_batches: list[tuple[set[int], list[int]]] = []
        for identity, chunk in self._chunks():
            target = next((b for b in open_batches if identity not in b[0]), None)
            if target is None:
                target = (set(), [])
                open_batches.append(target)
            target[0].add(identity)
            target[1].extend(chunk)
            if len(target[0]) == self.num_identities:
                open_batches.remove(target)
                done.append(target[1])
        return done

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._packed()
        count = len(self)
        if not batches:
            raise RuntimeError("no complete P x K batch could be formed from the sampler's images")
        for step in range(count):
            yield batches[step % len(batches)]

    def __len__(self) -> int:
        return max(1, len(self.sampler) // self.batch_size)
