"""Variable-length result lists: a distance threshold chosen on validation, then applied.

The study's test mode returns, per query, the gallery images closer than a threshold instead
of a fixed top-k. ``choose_threshold`` picks that threshold on a validation split and
``cut_ranked_lists`` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attrnet.retrieval.rank import ArrayLike, as_distmat, as_ids


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold and the mean F1 it reaches on the validation queries."""

    threshold: float
    mean_f1: float
    num_queries: int  # queries with at least one relevant gallery item (the F1 average)


def _tensor(array: np.ndarray) -> torch.Tensor:
    """Share the array's memory when torch may (it refuses read-only arrays: copy those)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _limits(num_gallery: int, max_results: int | None, min_results: int) -> tuple[int, int]:
    cap = num_gallery if max_results is None else min(max_results, num_gallery)
    if min_results < 1 or cap < min_results:
        raise ValueError(
            f"need 1 <= min_results <= max_results, got {min_results} and {max_results}"
        )
    return cap, min_results


def best_first(distmat: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and gallery indices of the k smallest entries per row, in stable ascending order.

    Equal distances keep gallery order, as in ``evaluate_rank``.
    """
    idx = torch.topk(distmat, k, dim=1, largest=False).indices.sort(dim=1).values
    vals, order = distmat.gather(1, idx).sort(dim=1, stable=True)
    idx = idx.gather(1, order)
    # Where ties straddle the cut, top-k may have kept any of them: redo those rows exactly.
    crowded = (distmat <= vals[:, -1:]).sum(1) > k
    for r in crowded.nonzero().flatten().tolist():
        vals[r], idx[r] = (t[:k] for t in torch.sort(distmat[r], stable=True))
    return vals, idx


def choose_threshold(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    max_results: int | None = None,
    min_results: int = 1,
) -> ThresholdChoice:
    """Distance threshold that maximises the mean per-query F1 of the returned lists.

    Rule (study protocol, nothing filtered): a query returns its gallery items with distance
    <= threshold, best first, but at least ``min_results`` and at most ``max_results`` (None:
    no cap). Its F1 is 2 TP / (returned + relevant), relevant = gallery items with the query's
    person id; the mean runs over queries with at least one relevant item. Lists only change at
    distance values, so sweeping those finds the optimum exactly. Of equally good thresholds
    the largest wins (the study preferred recall); the value returned is the midpoint of the
    winning interval between consecutive distance values, so it does not sit on a validation
    distance (just below the smallest one when the best is the shortest lists, the largest one
    when it is the longest). Meant for a validation split: it holds num_query x max_results
    arrays (num_gallery wide when max_results is None).
    """
    d = _tensor(as_distmat(distmat))
    num_q, num_g = d.shape
    q_ids = _tensor(as_ids(q_pids, num_q, "q_pids"))
    g_ids = _tensor(as_ids(g_pids, num_g, "g_pids"))
    cap, low = _limits(num_g, max_results, min_results)
    vals, idx = best_first(d, cap)
    relevant = (g_ids[None, :] == q_ids[:, None]).sum(1)
    scored = relevant > 0
    if not scored.any():
        raise ValueError("no validation query has a relevant gallery item: cannot choose")
    vals, relevant = vals[scored].to(torch.float64), relevant[scored]
    hits = (g_ids[idx[scored]] == q_ids[scored, None]).cumsum(1).to(torch.float64)
    returned = torch.arange(1, cap + 1)
    f1 = 2.0 * hits / (returned[None, :] + relevant[:, None])  # F1 when returning n items
    # Raising the threshold past vals[:, n - 1] lengthens a list from n - 1 to n items.
    base = f1[:, low - 1].sum()
    events, gain = vals[:, low:].flatten(), (f1[:, low:] - f1[:, low - 1 : -1]).flatten()
    events, order = events.sort(stable=True)
    total = base + gain[order].cumsum(0)
    last_of_value = torch.ones_like(events, dtype=torch.bool)
    last_of_value[:-1] = events[1:] != events[:-1]
    plateaus = torch.cat([events.new_tensor([-np.inf]), events[last_of_value]])
    scores = torch.cat([base[None], total[last_of_value]]) / len(relevant)
    best = int(len(scores) - 1 - torch.argmax(scores.flip(0)))  # the last of equal maxima
    return ThresholdChoice(
        threshold=_inside(plateaus, best, np.float32 if d.dtype == torch.float32 else np.float64),
        mean_f1=float(scores[best]),
        num_queries=len(relevant),
    )


def _inside(plateaus: torch.Tensor, best: int, dtype: type) -> float:
    """A threshold, exact in the distances' dtype, in [plateaus[best], plateaus[best + 1])."""
    if len(plateaus) == 1:  # lists cannot grow (min_results == max_results): any value works
        return 0.0
    if best == 0:
        return float(np.nextafter(dtype(plateaus[1]), dtype(-np.inf)))
    lo = dtype(plateaus[best])
    if best == len(plateaus) - 1:
        return float(lo)
    hi = dtype(plateaus[best + 1])
    mid = dtype((float(lo) + float(hi)) / 2.0)
    return float(mid if mid < hi else lo)


def cut_ranked_lists(
    distmat: ArrayLike,
    threshold: float,
    max_results: int | None,
    min_results: int = 1,
    chunk_size: int = 256,
) -> list[np.ndarray]:
    """Per query, gallery indices with distance <= ``threshold``, best first.

    Each list holds at least ``min_results`` and at most ``max_results`` items (None: no cap);
    equal distances keep gallery order. ``chunk_size`` queries are sorted at a time.
    """
    d = _tensor(as_distmat(distmat))
    cap, low = _limits(d.shape[1], max_results, min_results)
    lists: list[np.ndarray] = []
    for s in range(0, d.shape[0], chunk_size):
        vals, idx = best_first(d[s : s + chunk_size], cap)
        lengths = (vals <= threshold).sum(1).clamp(low, cap)
        lists.extend(row[:n].numpy() for row, n in zip(idx, lengths.tolist(), strict=True))
    return lists
