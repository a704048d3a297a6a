"""Feature extraction split across DDP ranks: each rank's share, then one gathered matrix.

Each rank embeds the images of ``shard_indices`` (``DistributedSampler`` order, padded with
repeats so every rank has as many); ``gather_rows`` all-gathers features and dataset indices
and puts every row back at its index, so repeats vanish and every rank holds the whole matrix,
identical to a single-process extraction. Without an initialised process group both are no-ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(count: int) -> list[int]:
    """The dataset indices this rank embeds: all of them in one process, else every n-th."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return list(range(count))
    sampler = DistributedSampler(range(count), world_size, rank, shuffle=False, drop_last=False)
    return list(sampler)


def _all_gather_padded(tensor: torch.Tensor, world_size: int) -> list[torch.Tensor]:
    """``all_gather`` of tensors whose first dimension differs between ranks."""
    device = (
        torch.device("cuda", torch.cuda.current_device())
        if (dist.get_backend() == "nccl")
        else torch.device("cpu")
    )
    local = tensor.to(device)
    size = torch.tensor([local.shape[0]], device=device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.zeros_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    return [part[: int(s.item())].cpu() for part, s in zip(parts, sizes, strict=True)]


def gather_indexed(
    local: torch.Tensor, indices: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' rows (``local[i]`` belongs to dataset index ``indices[i]``) and their indices,
    one row per distinct index, in index order. A repeated index (the sampler's padding) keeps
    its first row in rank order; indices no rank saw (e.g. in a sanity check) are absent."""
    if local.shape[0] != len(indices):
        raise ValueError(f"{local.shape[0]} feature rows for {len(indices)} dataset indices")
    index = torch.as_tensor(indices, dtype=torch.long)
    _, world_size = rank_and_world_size()
    if world_size > 1:
        local = torch.cat(_all_gather_padded(local, world_size))
        index = torch.cat(_all_gather_padded(index, world_size))
    order = torch.argsort(index, stable=True)
    first = torch.ones(len(order), dtype=torch.bool)
    first[1:] = index[order][1:] != index[order][:-1]
    chosen = order[first]
    return local[chosen], index[chosen]


def gather_rows(local: torch.Tensor, indices: Sequence[int], count: int) -> torch.Tensor:
    """All ranks' rows (``local[i]`` belongs to dataset index ``indices[i]``) as one (count, D).

    A repeated index (the sampler's padding) keeps its first row in rank order; an index
    outside ``[0, count)`` or one that no rank embedded is an error.
    """
    rows, index = gather_indexed(local, list(indices))
    if not torch.equal(index, torch.arange(count)):
        present, expected = set(index.tolist()), set(range(count))
        if present - expected:
            raise ValueError(
                f"dataset indices {sorted(present - expected)[:5]} outside [0, {count})"
            )
        raise ValueError(f"no rank embedded dataset indices {sorted(expected - present)[:5]}")
    return rows
