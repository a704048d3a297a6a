"""Query x gallery distance matrices: Euclidean, per-attribute weighted Euclidean, cosine.

Plain numpy (float32 BLAS): the re-ID evaluation (``attrnet.retrieval``) and the torch-free
API (``attrnet.load("model.onnx").search``) share this one implementation. Torch tensors are
accepted as inputs (duck-typed; torch is never imported). Matrices are computed in query chunks
so the full Market test set (3,368 x 19,732) needs only the float32 output plus one chunk of
work memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

    ArrayLike = torch.Tensor | np.ndarray

Metric = Literal["euclidean", "weighted", "cosine"]
METRICS: tuple[str, ...] = ("euclidean", "weighted", "cosine")

_EXACT_BELOW = 1e-2  # squared distances below this share of |q|^2 + |g|^2 are recomputed
_EXACT_BATCH = 1 << 22  # feature values gathered at a time for that recomputation
_NORM_EPS = 1e-12  # smallest norm divided by in cosine normalisation (as torch's F.normalize)


def as_float32(x: Any) -> np.ndarray:
    """``x`` (array, list, or a torch tensor on any device) as a float32 numpy array."""
    if hasattr(x, "detach"):  # a torch tensor: bfloat16 and CUDA tensors have no numpy view
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def as_features(x: ArrayLike, name: str = "features") -> np.ndarray:
    """Return ``x`` as a 2-D float32 array, rejecting other shapes and non-finite values."""
    a = as_float32(x)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (items x dims), got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def weights_from_scores(scores: ArrayLike, eps: float = 1e-8) -> np.ndarray:
    """Per-attribute distance weights from validation scores (F1 or accuracy), mean 1.

    The study's ablation: attributes the model recognises well count more in the distance.
    All-zero scores give uniform weights.
    """
    s = as_float32(scores).ravel()
    if s.size == 0 or not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("scores must be a non-empty vector of finite, non-negative values")
    if s.sum() <= eps:
        return np.ones_like(s)
    return s / s.mean()


def _check_weights(weights: ArrayLike | None, dims: int) -> np.ndarray:
    if weights is None:
        raise ValueError('metric="weighted" needs a weights vector (see weights_from_scores)')
    w = as_float32(weights).ravel()
    if w.size != dims:
        raise ValueError(f"weights has {w.size} entries, features have {dims} dimensions")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and non-negative")
    return w


def _normalize(x: np.ndarray) -> np.ndarray:
    """Rows (last axis) scaled to unit L2 norm; all-zero rows stay zero."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _NORM_EPS)


def metric_space(x: np.ndarray, metric: Metric, weights: ArrayLike | None = None) -> np.ndarray:
    """Map features so that ``metric`` becomes plain geometry on the result.

    weighted: scale dimension j by sqrt(w_j), so the weighted distance is Euclidean there;
    cosine: L2-normalise rows, so 1 - cos is 1 - dot product; euclidean: unchanged.
    """
    if metric == "euclidean":
        return x
    if metric == "weighted":
        return x * np.sqrt(_check_weights(weights, x.shape[1]))
    if metric == "cosine":
        return _normalize(x)
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")


def _block(
    q: np.ndarray, g: np.ndarray, g_sq: np.ndarray, g_sq_max: float, cosine: bool
) -> np.ndarray:
    """Squared Euclidean (or cosine) distance of one query chunk to all gallery rows."""
    block = q @ g.T
    if cosine:
        return np.clip(np.subtract(1.0, block, out=block), 0.0, 2.0, out=block)
    q_sq = np.einsum("ij,ij->i", q, q)[:, None]
    block *= -2.0
    block += g_sq
    block += q_sq
    np.maximum(block, 0.0, out=block)
    # |q|^2 + |g|^2 - 2 q.g carries an error of ~1e-7 (|q|^2 + |g|^2), large next to a small
    # distance (a near-duplicate would get sqrt(1e-5) instead of 0): recompute those exactly.
    rows, cols = np.nonzero(block <= _EXACT_BELOW * (q_sq + g_sq_max))
    step = max(1, _EXACT_BATCH // max(1, q.shape[1]))
    for s in range(0, rows.size, step):
        r, c = rows[s : s + step], cols[s : s + step]
        diff = q[r] - g[c]
        block[r, c] = np.einsum("ij,ij->i", diff, diff)
    return block


def _blocks(
    q: np.ndarray, g: np.ndarray, cosine: bool, chunk_size: int, squared: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """The blocks of prepared (metric-space, centred) features."""
    g_sq = np.einsum("ij,ij->i", g, g)[None, :]
    g_sq_max = float(g_sq.max()) if g_sq.size else 0.0
    for start in range(0, q.shape[0], chunk_size):
        block = _block(q[start : start + chunk_size], g, g_sq, g_sq_max, cosine)
        if squared and cosine:
            np.square(block, out=block)
        elif not squared and not cosine:
            np.sqrt(block, out=block)
        yield start, block


def iter_distance_chunks(
    query: ArrayLike,
    gallery: ArrayLike,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    chunk_size: int = 1024,
    squared: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
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
        centre = g.mean(0, keepdims=True) if len(g) else np.zeros((1, g.shape[1]), np.float32)
        q, g = q - centre, g - centre
    return _blocks(q, g, cosine, chunk_size, squared)


def compute_distance(
    query: ArrayLike,
    gallery: ArrayLike,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    chunk_size: int = 1024,
    squared: bool = False,
) -> np.ndarray:
    """Distance matrix (num_query x num_gallery, float32) between two feature sets.

    metric: "euclidean", "weighted" (sqrt(sum_j w_j (q_j - g_j)^2), ``weights`` required) or
    "cosine" (1 - cos). ``chunk_size`` query rows are done at a time, so work memory beyond
    the output is one (chunk_size x num_gallery) block. ``squared`` returns squared distances
    (what k-reciprocal re-ranking consumes) without a sqrt round trip.
    """
    blocks = iter_distance_chunks(query, gallery, metric, weights, chunk_size, squared)
    out = np.empty((len(query), len(gallery)), dtype=np.float32)
    for start, block in blocks:
        out[start : start + block.shape[0]] = block
    return out


def paired_distance(
    a: ArrayLike,
    b: ArrayLike,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    squared: bool = False,
) -> np.ndarray:
    """Distance between matching rows of ``a`` and ``b`` (broadcast over leading dimensions).

    Same definitions as ``compute_distance``, computed directly from differences; used to
    score a few chosen pairs without building a whole matrix.
    """
    a, b = as_float32(a), as_float32(b)
    if metric == "cosine":
        d = np.clip(1.0 - (_normalize(a) * _normalize(b)).sum(-1), 0.0, 2.0)
        return np.square(d) if squared else d
    diff_sq = np.square(a - b)
    if metric == "weighted":
        diff_sq *= _check_weights(weights, a.shape[-1])
    elif metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    d_sq = diff_sq.sum(-1)
    return d_sq if squared else np.sqrt(d_sq)
