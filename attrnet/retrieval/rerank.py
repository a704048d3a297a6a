"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in bounded memory.

Gives what the published ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``
gives for the distances of the given features, without its N x N matrices (N = queries +
gallery, 23,100 on Market): neighbour lists are taken from distance rows computed a chunk at a
time, the k-reciprocal weights V are sparse, and the Jaccard distances are summed by sparse
joins over the shared neighbours, a chunk of queries at a time. Only the num_query x
num_gallery output is dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attrnet.distances import (
    Metric,
    as_features,
    iter_distance_chunks,
    paired_distance,
)
from attrnet.retrieval.rank import ArrayLike

_PAIR_BUDGET = 1 << 22  # rows of joined pairs (or gathered feature rows) handled at a time


@dataclass(frozen=True)
class _Sparse:
    """Sparse N x N matrix in row-major COO form (rows ascending, columns ascending per row)."""

    row: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    size: int

    def row_ptr(self) -> torch.Tensor:
        counts = torch.bincount(self.row, minlength=self.size)
        return torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])


def _expand_ranges(start: torch.Tensor, count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ranges [start_i, start_i + count_i): (range id of each element, element index)."""
    owner = torch.repeat_interleave(torch.arange(count.numel()), count)
    shift = (start - (count.cumsum(0) - count)).index_select(0, owner)
    return owner, torch.arange(owner.numel()).add_(shift)


def _neighbours(
    feats: torch.Tensor,
    num_query: int,
    k: int,
    metric: Metric,
    weights: ArrayLike | None,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunked pass over all N x N squared distances.

    Returns the k nearest items of every row (ascending), every row's maximum, and the
    query x gallery block of squared distances.
    """
    n = feats.shape[0]
    rank = torch.empty(n, k, dtype=torch.int64)
    row_max = torch.empty(n)
    q_g = torch.empty(num_query, n - num_query)
    for s, array in iter_distance_chunks(feats, feats, metric, weights, chunk_size, squared=True):
        block = torch.from_numpy(array)
        e = s + block.shape[0]
        rank[s:e] = torch.topk(block, k, dim=1, largest=False, sorted=True).indices
        row_max[s:e] = block.amax(1)
        if s < num_query:
            q_g[s : min(e, num_query)] = block[: num_query - s, num_query:]
    return rank, row_max.clamp_min(torch.finfo(torch.float32).tiny), q_g


def _reciprocal(rank: torch.Tensor, k: int) -> torch.Tensor:
    """Mask over ``rank[:, :k]``: neighbour j of i is kept when i is among j's k neighbours."""
    top = rank[:, :k]
    own = torch.arange(top.shape[0])[:, None, None]
    return (top[top] == own).any(2)


def _expansion_sets(rank: torch.Tensor, k1: int, chunk_size: int) -> tuple[torch.Tensor, ...]:
    """Each row's k-reciprocal set grown by the half-size sets of its members (paper, eq. 6).

    A member's set R(c, k1/2) is added when at least 2/3 of it lies in R(i, k1). Returns the
    (row, col) pairs of the union, sorted by row then column, without duplicates.
    """
    n = rank.shape[0]
    kk = min(k1 + 1, rank.shape[1])
    kh = min(int(np.around(k1 / 2.0)) + 1, rank.shape[1])
    top = rank[:, :kk]
    near = torch.where(_reciprocal(rank, kk), top, -1)  # R(i, k1), -1 = not reciprocal
    half = torch.where(_reciprocal(rank, kh), rank[:, :kh], -1)  # R(c, k1/2)
    half_size = (half >= 0).sum(1).to(torch.float64)
    rows, cols = [], []
    for s in range(0, n, chunk_size):
        near_c = near[s : s + chunk_size]
        cand = half[top[s : s + chunk_size]]  # (c, kk, kh): the members' half-size sets
        # Membership in R(i, k1) by binary search in the row's sorted set (-1 never matches).
        ordered = near_c.sort(dim=1).values
        flat = cand.flatten(1)
        at = torch.searchsorted(ordered, flat).clamp_(max=kk - 1)
        shared = ((ordered.gather(1, at) == flat) & (flat >= 0)).view(cand.shape)
        grow = (near_c >= 0) & (shared.sum(2) > 2.0 / 3.0 * half_size[top[s : s + chunk_size]])
        union = torch.cat([near_c, torch.where(grow[..., None], cand, -1).flatten(1)], dim=1)
        union = torch.where(union < 0, n, union).sort(dim=1).values
        first = torch.ones_like(union, dtype=torch.bool)
        first[:, 1:] = union[:, 1:] != union[:, :-1]
        keep = first & (union < n)
        rows.append(keep.nonzero()[:, 0] + s)
        cols.append(union[keep])
    return torch.cat(rows), torch.cat(cols)


def _weights(
    feats: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    row_max: torch.Tensor,
    metric: Metric,
    weights: ArrayLike | None,
) -> _Sparse:
    """V: row-normalised exp(-d^2 / max_row d^2) over each row's expansion set."""
    n = feats.shape[0]
    step = max(1, _PAIR_BUDGET // max(1, feats.shape[1]))
    dist = torch.empty(row.numel())
    for s in range(0, row.numel(), step):
        r, c = row[s : s + step], col[s : s + step]
        a, b = feats.index_select(0, r), feats.index_select(0, c)
        pairs = paired_distance(a, b, metric, weights, squared=True)
        dist[s : s + step] = torch.from_numpy(pairs)
    w = torch.exp(-(dist / row_max.index_select(0, row)))
    total = torch.zeros(n).index_add_(0, row, w)
    return _Sparse(row, col, w / total.index_select(0, row), n)


def _coalesce(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor, n: int) -> _Sparse:
    """Sum duplicate (row, col) entries; result sorted by row then column."""
    keys, inverse = torch.unique(row * n + col, return_inverse=True)
    summed = torch.zeros(keys.numel()).index_add_(0, inverse, val)
    return _Sparse(keys // n, keys % n, summed, n)


def _query_expansion(v: _Sparse, rank: torch.Tensor, k2: int) -> _Sparse:
    """Local query expansion: each row of V becomes the mean of its k2 nearest items' rows."""
    ptr = v.row_ptr()
    counts = ptr[1:] - ptr[:-1]
    parts = []
    rows_per_step = max(1, _PAIR_BUDGET // (k2 * max(1, int(counts.max()))))
    for s in range(0, v.size, rows_per_step):
        nb = rank[s : s + rows_per_step, :k2]
        owner, idx = _expand_ranges(ptr[nb.flatten()], counts[nb.flatten()])
        row = owner // nb.shape[1] + s
        parts.append(_coalesce(row, v.col.index_select(0, idx), v.val.index_select(0, idx), v.size))
    row = torch.cat([p.row for p in parts])
    col = torch.cat([p.col for p in parts])
    val = torch.cat([p.val for p in parts]) / k2
    return _Sparse(row, col, val, v.size)


def _jaccard_into(
    out: torch.Tensor, v: _Sparse, num_query: int, lambda_value: float, chunk_size: int
) -> None:
    """out <- (1 - lambda) * Jaccard + lambda * out, for query rows x gallery columns.

    sum_k min(V[q, k], V[g, k]) is accumulated over the non-zero k of each query row, joined
    with the gallery rows that are non-zero in column k, for at most ``chunk_size`` queries
    (and about _PAIR_BUDGET pairs) at a time.
    """
    num_gallery = v.size - num_query
    ptr = v.row_ptr()
    in_gallery = v.row >= num_query
    g_row, g_col, g_val = v.row[in_gallery], v.col[in_gallery], v.val[in_gallery]
    order = torch.argsort(g_col, stable=True)
    g_row, g_col, g_val = g_row[order] - num_query, g_col[order], g_val[order]
    col_count = torch.bincount(g_col, minlength=v.size)
    col_ptr = col_count.cumsum(0) - col_count
    q_end = int(ptr[num_query])
    pairs_per_entry = col_count[v.col[:q_end]]
    per_query = torch.zeros(num_query, dtype=torch.int64).index_add_(
        0, v.row[:q_end], pairs_per_entry
    )
    bounds = _split_by_budget(per_query, _PAIR_BUDGET, chunk_size)
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        a, b = int(ptr[s]), int(ptr[e])
        owner, idx = _expand_ranges(col_ptr[v.col[a:b]], pairs_per_entry[a:b])
        overlap = torch.minimum(v.val[a:b].index_select(0, owner), g_val.index_select(0, idx))
        flat = ((v.row[a:b] - s) * num_gallery).index_select(0, owner)
        flat += g_row.index_select(0, idx)
        shared = torch.zeros(e - s, num_gallery)
        shared.view(-1).index_add_(0, flat, overlap)
        # (1 - lambda) * (1 - s / (2 - s)) + lambda * original, with s the summed minima
        block = out[s:e].mul_(lambda_value).add_(1.0 - lambda_value)
        block.addcdiv_(shared, torch.rsub(shared, 2.0), value=lambda_value - 1.0)


def _split_by_budget(sizes: torch.Tensor, budget: int, max_items: int) -> list[int]:
    """Boundaries of consecutive groups of at most ``max_items`` items and about ``budget`` size.

    A group always takes at least one item, however large.
    """
    ends = torch.cumsum(sizes, 0)
    bounds, start = [0], 0
    while start < sizes.numel():
        base = int(ends[start - 1]) if start else 0
        stop = int(torch.searchsorted(ends, base + budget, right=True))
        start = min(max(stop, start + 1), start + max_items, sizes.numel())
        bounds.append(start)
    return bounds


def re_ranking(
    query: ArrayLike,
    gallery: ArrayLike,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: Metric = "euclidean",
    weights: ArrayLike | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Re-ranked query x gallery distances (float32) from query and gallery features.

    d is ``metric`` (see ``compute_distance``); as in the reference, the original distance
    is d^2 divided by its row maximum over all N items, neighbour lists rank all N items,
    and the result is (1 - lambda_value) * Jaccard + lambda_value * original. ``chunk_size``
    rows of N distances are computed at a time (chunk_size x N float32 of work memory).
    V is float32 (some ports use float16); exactly equal distances may order neighbours
    differently from numpy's unstable argsort in the reference, as they may between runs of it.
    """
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    q = as_features(query, "query")
    g = as_features(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query has {q.shape[1]} dims but gallery has {g.shape[1]}")
    feats = torch.from_numpy(np.concatenate([q, g]))
    num_query = q.shape[0]
    k = min(max(k1 + 1, k2), feats.shape[0])
    rank, row_max, out = _neighbours(feats, num_query, k, metric, weights, chunk_size)
    out.div_(row_max[:num_query, None])
    row, col = _expansion_sets(rank, k1, chunk_size)
    v = _weights(feats, row, col, row_max, metric, weights)
    if k2 != 1:
        v = _query_expansion(v, rank, min(k2, k))
    _jaccard_into(out, v, num_query, lambda_value, chunk_size)
    return out
