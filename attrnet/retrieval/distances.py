"""Query x gallery distance matrices: Euclidean, per-attribute weighted Euclidean, cosine.

Matrices are computed in query chunks so the full Market test set (3,368 x 19,732) needs only
the float32 output plus one chunk of work memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Metric = Literal["euclidean", "weighted", "cosine"]
METRICS: tuple[str, ...] = ("euclidean", "weighted", "cosine")

ArrayLike = torch.Tensor | np.ndarray

_EXACT_BELOW = 1e-2  # squared distances below this share of |q|^2 + |g|^2 are recomputed
_EXACT_BATCH = 1 << 22  # feature values gathered at a time for that recomputation


def as_features(x: ArrayLike, name: str = "features") -> torch.Tensor:
    """Return ``x`` as a 2-D float32 CPU tensor, rejecting other shapes and non-finite values."""
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float32)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (items x dims), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def weights_from_scores(scores: ArrayLike, eps: float = 1e-8) -> torch.Tensor:
    """Per-attribute distance weights from validation scores (F1 or accuracy), mean 1.

    The study's ablation: attributes the model recognises well count more in the distance.
    All-zero scores give uniform weights.
    """
    s = torch.as_tensor(scores, dtype=torch.float32).flatten()
    if s.numel() == 0 or not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError("scores must be a non-empty vector of finite, non-negative values")
    if s.sum() <= eps:
        return torch.ones_like(s)
    return s / s.mean()


def _check_weights(weights: ArrayLike | None, dims: int) -> torch.Tensor:
    if weights is None:
        raise ValueError('metric="weighted" needs a weights vector (see weights_from_scores)')
    w = torch.as_tensor(weights, dtype=torch.float32).flatten()
    if w.numel() != dims:
        raise ValueError(f"weights has {w.numel()} entries, features have {dims} dimensions")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return w


def metric_space(x: torch.Tensor, metric: Metric, weights: ArrayLike | None = None) -> torch.Tensor:
    """Map features so that ``metric`` becomes plain geometry on the result.

    weighted: scale dimension j by sqrt(w_j), so the weighted distance is Euclidean there;
    cosine: L2-normalise rows, so 1 - cos is 1 - dot product; euclidean: unchanged.
    """
    if metric == "euclidean":
        return x
    if metric == "weighted":
        return x * _check_weights(weights, x.shape[1]).sqrt()
    if metric == "cosine":
        return F.normalize(x, dim=1)
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _block(
    q: torch.Tensor, g: torch.Tensor, g_sq: torch.Tensor, g_sq_max: float, cosine: bool
) -> torch.Tensor:
    """Squared Euclidean (or cosine) distance of one query chunk to all gallery rows."""
    if cosine:
        return torch.mm(q, g.T).neg_().add_(1.0).clamp_(0.0, 2.0)
    q_sq = q.pow(2).sum(1, keepdim=True)
    block = torch.addmm(g_sq, q, g.T, alpha=-2.0).add_(q_sq).clamp_(min=0.0)
    # |q|^2 + |g|^2 - 2 q.g carries an error of ~1e-7 (|q|^2 + |g|^2), large next to a small
    # distance (a near-duplicate would get sqrt(1e-5) instead of 0): recompute those exactly.
    rows, cols = (block <= _EXACT_BELOW * (q_sq + g_sq_max)).nonzero().unbind(1)
    step = max(1, _EXACT_BATCH // q.shape[1])
    for s in range(0, rows.numel(), step):
        r, c = rows[s : s + step], cols[s : s + step]
        block[r, c] = (q.index_select(0, r) - g.index_select(0, c)).pow_(2).sum(1)
    return block


def _blocks(
    q: torch.Tensor, g: torch.Tensor, cosine: bool, chunk_size: int, squared: bool
) -> Iterator[tuple[int, torch.Tensor]]:
    """The blocks of prepared (metric-space, centred) features."""
    g_sq = g.pow(2).sum(1)[None, :]
    g_sq_max = float(g_sq.max()) if g_sq.numel() else 0.0
    for start in range(0, q.shape[0], chunk_size):
        block = _block(q[start : start + chunk_size], g, g_sq, g_sq_max, cosine)
        if squared and cosine:
            block.pow_(2)
        elif not squared and not cosine:
            block.sqrt_()
        yield start, block


def iter_distance_chunks(
    query: ArrayLike,
    gallery: ArrayLike,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    chunk_size: int = 1024,
    squared: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(first_query_row, block)``: the distances of ``chunk_size`` queries at a time.

    For consumers that reduce each block (top-k, row maxima) and never need the whole matrix.
    Definitions as in ``compute_distance``; inputs are checked before the first yield.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    q = as_features(query, "query")
    g = as_features(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query has {q.shape[1]} dims but gallery has {g.shape[1]}")
    q, g = metric_space(q, metric, weights), metric_space(g, metric, weights)
    cosine = metric == "cosine"
    if not cosine:
        # Translation leaves Euclidean distances unchanged; centring shrinks the norms and with
        # them the cancellation error of |q|^2 + |g|^2 - 2 q.g in float32.
        centre = g.mean(0, keepdim=True)
        q, g = q - centre, g - centre
    return _blocks(q, g, cosine, chunk_size, squared)


def compute_distance(
    query: ArrayLike,
    gallery: ArrayLike,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    chunk_size: int = 1024,
    squared: bool = False,
) -> torch.Tensor:
    """Distance matrix (num_query x num_gallery, float32) between two feature sets.

    metric: "euclidean", "weighted" (sqrt(sum_j w_j (q_j - g_j)^2), ``weights`` required) or
    "cosine" (1 - cos). ``chunk_size`` query rows are done at a time, so work memory beyond
    the output is one (chunk_size x num_gallery) block. ``squared`` returns squared distances
    (what k-reciprocal re-ranking consumes) without a sqrt round trip.
    """
    blocks = iter_distance_chunks(query, gallery, metric, weights, chunk_size, squared)
    out = torch.empty(len(query), len(gallery), dtype=torch.float32)
    for start, block in blocks:
        out[start : start + block.shape[0]] = block
    return out


def paired_distance(
    a: torch.Tensor,
    b: torch.Tensor,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    squared: bool = False,
) -> torch.Tensor:
    """Distance between matching rows of ``a`` and ``b`` (broadcast over leading dimensions).

    Same definitions as ``compute_distance``, computed directly from differences; used to
    score a few chosen pairs without building a whole matrix.
    """
    a = a.to(torch.float32)
    b = b.to(torch.float32)
    if metric == "cosine":
        d = 1.0 - (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)
        d = d.clamp(0.0, 2.0)
        return d.pow(2) if squared else d
    diff_sq = (a - b).pow(2)
    if metric == "weighted":
        diff_sq = diff_sq * _check_weights(weights, a.shape[-1])
    elif metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    d_sq = diff_sq.sum(-1)
    return d_sq if squared else d_sq.sqrt()
