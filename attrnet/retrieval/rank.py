"""CMC, mAP and mINP of a query x gallery distance matrix, vectorised over all queries.

Semantics are those of torchreid's ``eval_market1501`` and fast-reid's evaluator: each
gallery row is ranked by a stable sort of its distances (ties keep gallery order); under the
Market-1501 protocol the gallery items with the query's person id *and* camera are removed, and
so is junk (pid -1), while distractors (pid 0) stay as non-matches; a camera id of -1 is
unknown, so with unknown cameras the same-camera rule is off. Over the remaining ranking,
CMC@k is 1 when a match lies within the first k; AP is the mean over matches of the precision at
each match; INP = number of matches / (position of the last match + 1). Queries without any
valid match are skipped. The protocol "study" (the original study's validation) removes nothing.

Instead of sorting every row (too slow at full Market scale on a CPU), ``evaluate_rank``
only finds where each match lands: a per-row histogram over value bins counts the items in
lower bins exactly (binning is monotone in the distance), and the few items sharing a bin with
a match are compared one by one. Matches of a query are found per identity, not by scanning
the gallery. The work is plain numpy: single-threaded, so it does not stall when other
processes hold the CPU cores (where torch's OpenMP pool, spin-waiting by default, can).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

Protocol = Literal["market1501", "study"]
PROTOCOLS: tuple[str, ...] = ("market1501", "study")
JUNK_PID = -1
UNKNOWN_CAMERA = -1  # e.g. a generic CSV without camera_id: never "the same camera"
_ITEMS_PER_BIN = 8  # bin width of the counting histogram, in items per row on average

ArrayLike = torch.Tensor | np.ndarray


@dataclass(frozen=True)
class RankResult:
    """Ranking scores averaged over the queries that have at least one valid match."""

    cmc: np.ndarray = field(repr=False)
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped: int

    def rank(self, k: int) -> float:
        """CMC top-k accuracy (k is 1-based)."""
        return float(self.cmc[k - 1])

    def as_dict(self, ranks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float | int]:
        """Flat scalars for logging: rank-k for ``ranks`` that fit, mAP, mINP, query counts."""
        out: dict[str, float | int] = {
            f"rank{k}": self.rank(k) for k in ranks if k <= len(self.cmc)
        }
        out.update(
            mAP=self.mAP,
            mINP=self.mINP,
            num_valid_queries=self.num_valid_queries,
            num_skipped=self.num_skipped,
        )
        return out


@dataclass(frozen=True)
class _Relevant:
    """Per query, the gallery items of its identity (padded with -1) and their roles."""

    index: np.ndarray  # (Q, S) gallery indices, ascending within a row, -1 = padding
    match: np.ndarray  # (Q, S) bool: a kept match
    removed: np.ndarray  # (Q, S) bool: same identity and camera, removed by the protocol
    junk: np.ndarray  # gallery indices removed for every query


def as_distmat(distmat: ArrayLike) -> np.ndarray:
    """The distance matrix as a float32 or float64 numpy array (no copy when it already is)."""
    if isinstance(distmat, torch.Tensor):
        t = distmat.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):  # e.g. bfloat16 has no numpy twin
            t = t.to(torch.float32 if t.is_floating_point() else torch.float64)
        distmat = t.numpy()
    d = np.asarray(distmat)
    if d.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {d.shape}")
    if d.dtype not in (np.float32, np.float64):
        d = d.astype(np.float32 if np.issubdtype(d.dtype, np.floating) else np.float64)
    return d


def as_ids(values: ArrayLike, length: int, name: str) -> np.ndarray:
    """Person or camera ids as an int64 vector of the given length, or a ValueError naming it."""
    v = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)
    if v.ndim != 1 or v.shape[0] != length:
        raise ValueError(f"{name} must be a vector of length {length}, got shape {v.shape}")
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {v.dtype}")
    return v.astype(np.int64, copy=False)


def _check_inputs(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int,
    protocol: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    d = as_distmat(distmat)
    num_q, num_g = d.shape
    if num_g == 0:
        raise ValueError("the gallery is empty")
    return (
        d,
        as_ids(q_pids, num_q, "q_pids"),
        as_ids(g_pids, num_g, "g_pids"),
        as_ids(q_camids, num_q, "q_camids"),
        as_ids(g_camids, num_g, "g_camids"),
    )


def market_excluded(
    g_pids: np.ndarray, g_camids: np.ndarray, q_pid: int, q_camid: int
) -> np.ndarray:
    """The Market-1501 rule for one query: the gallery items it is never ranked against, its
    own identity seen by its own (known) camera, and junk."""
    same_camera = (g_camids == q_camid) & (q_camid != UNKNOWN_CAMERA)
    return ((g_pids == q_pid) & same_camera) | (g_pids == JUNK_PID)


def _relevant_items(
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    protocol: str,
) -> _Relevant:
    """Group the gallery by identity and list, for each query, the items of its identity."""
    market = protocol == "market1501"
    order = np.argsort(g_pids, kind="stable")
    pids, starts, counts = np.unique(g_pids[order], return_index=True, return_counts=True)
    pos = np.minimum(np.searchsorted(pids, q_pids), len(pids) - 1)
    sizes = np.where(pids[pos] == q_pids, counts[pos], 0)
    if market:
        sizes[q_pids == JUNK_PID] = 0
    slot = np.arange(max(int(sizes.max(initial=0)), 1))
    valid = slot[None, :] < sizes[:, None]
    flat = np.minimum(starts[pos][:, None] + slot[None, :], len(order) - 1)
    index = np.where(valid, order[flat], -1)
    same_camera = (g_camids[index] == q_camids[:, None]) & (q_camids[:, None] != UNKNOWN_CAMERA)
    removed = valid & same_camera if market else np.zeros_like(valid)
    junk = np.flatnonzero(g_pids == JUNK_PID) if market else np.empty(0, dtype=np.int64)
    return _Relevant(index=index, match=valid & ~removed, removed=removed, junk=junk)


def _precedes(d_a: np.ndarray, j_a: np.ndarray, d_b: np.ndarray, j_b: np.ndarray) -> np.ndarray:
    """Whether item a comes before item b in a stable ascending sort."""
    return (d_a < d_b) | ((d_a == d_b) & (j_a < j_b))


def _bins(d: np.ndarray, junk: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-row value bins, monotone in the distance, numbered row after row; junk in a dump bin.

    Returns the (n, num_g) bin numbers and the number of real bins (the dump bin comes next).
    """
    n, num_g = d.shape
    lo, hi = d.min(1), d.max(1)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("distmat contains NaN or infinite values")
    nbins = max(1, num_g // _ITEMS_PER_BIN)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        span = hi - lo
        if not np.isfinite(span).all():
            raise ValueError("distmat rows span a range too large to represent")
        scale = (nbins - 1) / span
    scale = np.where(np.isfinite(scale), scale, 0.0).astype(d.dtype)  # constant row: one bin
    x = np.subtract(d, lo[:, None])  # in [0, span]: times scale it cannot overflow
    x *= scale[:, None]
    np.clip(x, 0, nbins - 1, out=x)  # rounding must not leave the row's own bins
    bins = x.astype(np.intp)
    del x
    bins += np.arange(0, n * nbins, nbins)[:, None]
    bins[:, junk] = n * nbins
    return bins, n * nbins


def _match_positions(
    d: np.ndarray, index: np.ndarray, match: np.ndarray, removed: np.ndarray, junk: np.ndarray
) -> np.ndarray:
    """Position of every match in its query's filtered ranking, for one chunk of queries.

    Bins are monotone in the distance, so every item in a lower bin than a match precedes it
    (a per-row histogram counts them); only the few items sharing a match's bin are compared
    with it one by one. Returns (n, S) int64; entries of non-match slots are meaningless.
    """
    n, num_g = d.shape
    bins, dump = _bins(d, junk)
    flat = bins.ravel()
    hist = np.bincount(flat, minlength=dump + 1)[:dump].reshape(n, -1)
    below = np.zeros(dump + 1, dtype=np.int64)  # items in lower bins of the same row
    below[:dump] = (np.cumsum(hist, 1) - hist).ravel()

    slot_j = np.maximum(index, 0)
    slot_d = np.take_along_axis(d, slot_j, 1)
    slot_b = np.take_along_axis(bins, slot_j, 1)
    position = below[slot_b]

    # Exact order inside a match's bin: pair every item of that bin with the bin's matches.
    m_slot = np.flatnonzero(match)
    m_slot = m_slot[np.argsort(slot_b.ravel()[m_slot], kind="stable")]
    m_bin = slot_b.ravel()[m_slot]
    hot = np.zeros(dump + 1, dtype=bool)
    hot[m_bin] = True
    cand = np.flatnonzero(np.take(hot, flat))
    cand_b = flat[cand]
    first = np.searchsorted(m_bin, cand_b, side="left")
    per_cand = np.searchsorted(m_bin, cand_b, side="right") - first
    pair_c = np.repeat(np.arange(cand.size), per_cand)
    pair_m = m_slot[
        first[pair_c] + np.arange(pair_c.size) - (np.cumsum(per_cand) - per_cand)[pair_c]
    ]
    item = cand[pair_c]
    before = _precedes(
        d.ravel()[item], item % num_g, slot_d.ravel()[pair_m], slot_j.ravel()[pair_m]
    )
    position += np.bincount(pair_m[before], minlength=position.size).reshape(position.shape)

    # Items removed by the protocol were counted above; take back those preceding a match.
    removed_before = removed[:, :, None] & _precedes(
        slot_d[:, :, None], slot_j[:, :, None], slot_d[:, None, :], slot_j[:, None, :]
    )
    return position - removed_before.sum(1)


def _scores(position: np.ndarray, match: np.ndarray, max_rank: int) -> RankResult:
    """CMC, mAP and mINP from the filtered-ranking positions of each query's matches."""
    num_matches = match.sum(1)
    valid = num_matches > 0
    if not valid.any():
        raise ValueError("no query has a valid match in the gallery: nothing to score")
    pos = np.where(match, position, np.iinfo(np.int64).max)[valid]
    pos.sort(axis=1)
    num = num_matches[valid]
    hit_no = np.arange(1, pos.shape[1] + 1)[None, :]
    in_list = hit_no <= num[:, None]
    precision = np.where(in_list, hit_no / (np.where(in_list, pos, 0) + 1.0), 0.0)
    ap = precision.sum(1) / num
    last = pos[np.arange(len(num)), num - 1]
    inp = num / (last + 1.0)
    cmc = (pos[:, :1] < np.arange(1, max_rank + 1)[None, :]).mean(0)
    return RankResult(
        cmc=cmc,
        mAP=float(ap.mean()),
        mINP=float(inp.mean()),
        num_valid_queries=int(valid.sum()),
        num_skipped=int((~valid).sum()),
    )


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    protocol: Protocol = "market1501",
    chunk_size: int = 32,
) -> RankResult:
    """CMC (length ``min(max_rank, num_gallery)``), mAP and mINP of a distance matrix.

    ``distmat`` is (num_query x num_gallery), smaller = more similar; torch or numpy.
    ``protocol``: "market1501" (drop same id + same camera, and junk pid -1) or "study" (drop
    nothing). ``chunk_size`` query rows are processed at a time.
    """
    d, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol
    )
    rel = _relevant_items(q_pids, g_pids, q_camids, g_camids, protocol)
    position = np.empty(rel.index.shape, dtype=np.int64)
    for s in range(0, d.shape[0], chunk_size):
        e = s + chunk_size
        position[s:e] = _match_positions(
            d[s:e], rel.index[s:e], rel.match[s:e], rel.removed[s:e], rel.junk
        )
    return _scores(position, rel.match, min(max_rank, d.shape[1]))


def evaluate_rank_loop(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    protocol: Protocol = "market1501",
) -> RankResult:
    """Readable per-query reference for ``evaluate_rank`` (same result, much slower).

    Sorts every gallery row, filters it and scores it, query by query, as torchreid does.
    """
    d, q_pids, g_pids, q_camids, g_camids = _check_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol
    )
    max_rank = min(max_rank, d.shape[1])
    cmcs, aps, inps = [], [], []
    for i in range(d.shape[0]):
        order = np.argsort(d[i], kind="stable")
        keep = np.ones(order.shape, dtype=bool)
        if protocol == "market1501":
            keep = ~market_excluded(g_pids[order], g_camids[order], q_pids[i], q_camids[i])
        hits = (g_pids[order] == q_pids[i])[keep]
        if not hits.any():
            continue
        hit_at = np.flatnonzero(hits)
        cmc = np.zeros(max_rank)
        cmc[min(hit_at[0], max_rank) :] = 1.0
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, len(hit_at) + 1) / (hit_at + 1.0)))
        inps.append(len(hit_at) / (hit_at[-1] + 1.0))
    if not cmcs:
        raise ValueError("no query has a valid match in the gallery: nothing to score")
    return RankResult(
        cmc=np.mean(cmcs, axis=0),
        mAP=float(np.mean(aps)),
        mINP=float(np.mean(inps)),
        num_valid_queries=len(cmcs),
        num_skipped=d.shape[0] - len(cmcs),
    )
