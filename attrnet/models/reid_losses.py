"""Identity losses for re-ID training: batch-hard triplet loss (Hermans et al. 2017).

The identity classification loss is ``torch.nn.functional.cross_entropy`` with
``label_smoothing`` (Szegedy et al. 2016), used as is by the module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_euclidean(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (B, B) between rows, computed in float32 and clamped before sqrt."""
    x = embeddings.float()
    squared = x.pow(2).sum(1)
    d2 = squared[:, None] + squared[None, :] - 2.0 * x @ x.T
    # clamp: rounding can make d2 slightly negative, and sqrt'(0) is infinite
    return d2.clamp_min(1e-12).sqrt()


def batch_hard_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float | None = 0.3
) -> torch.Tensor:
    """Mean over anchors of ``[d(a, hardest positive) - d(a, hardest negative) + margin]_+``.

    For each anchor the hardest positive is the farthest sample of its identity (itself
    excluded) and the hardest negative the closest sample of another identity. Anchors with no
    positive or no negative in the batch are left out; a batch without any valid anchor gives a
    zero loss that still carries a gradient path. ``margin=None`` uses the soft margin
    ``log(1 + exp(d_ap - d_an))``.
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"embeddings (B, D) and labels (B,) expected, got {tuple(embeddings.shape)} and "
            f"{tuple(labels.shape)}"
        )
    distances = pairwise_euclidean(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive_mask, negative_mask = same & ~eye, ~same
    hardest_positive = distances.masked_fill(~positive_mask, float("-inf")).amax(1)
    hardest_negative = distances.masked_fill(~negative_mask, float("inf")).amin(1)
    valid = positive_mask.any(1) & negative_mask.any(1)
    gap = (hardest_positive - hardest_negative)[valid]
    if gap.numel() == 0:
        return embeddings.sum() * 0.0
    losses = F.softplus(gap) if margin is None else F.relu(gap + margin)
    return losses.mean()
