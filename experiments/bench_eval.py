"""Benchmark: vectorised evaluate_rank vs the per-query loop at full Market-1501 test scale.

Random (seeded) float32 distances, 3,368 queries x 19,732 gallery images with Market's mix of
identities, junk (pid -1) and distractors (pid 0) over 6 cameras. Prints a markdown table,
writes JSON, and fails if the two implementations disagree.

    python experiments/bench_eval.py [--out experiments/results/bench_eval.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from attrnet.io import atomic_write_text
from attrnet.retrieval import RankResult, evaluate_rank, evaluate_rank_loop

MARKET_QUERIES, MARKET_GALLERY, MARKET_IDS = 3368, 19732, 750
MARKET_JUNK, MARKET_DISTRACTORS = 3819, 2793


def market_like(seed: int, num_q: int, num_g: int, num_ids: int):
    """Distances and labels shaped like the Market-1501 test protocol (random distances)."""
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(1, num_ids + 1, num_g)
    special = rng.permutation(num_g)
    junk = round(num_g * MARKET_JUNK / MARKET_GALLERY)
    distractors = round(num_g * MARKET_DISTRACTORS / MARKET_GALLERY)
    g_pids[special[:junk]] = -1
    g_pids[special[junk : junk + distractors]] = 0
    q_pids = rng.integers(1, num_ids + 1, num_q)
    q_cams, g_cams = rng.integers(1, 7, num_q), rng.integers(1, 7, num_g)
    dist = torch.from_numpy(rng.random((num_q, num_g), dtype=np.float32))
    return dist, q_pids, g_pids, q_cams, g_cams


def best_time(fn: Callable[[], RankResult], repeats: int) -> tuple[float, list[float], RankResult]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def agree(a: RankResult, b: RankResult) -> bool:
    return (
        np.allclose(a.cmc, b.cmc, atol=1e-6)
        and abs(a.mAP - b.mAP) < 1e-6
        and abs(a.mINP - b.mINP) < 1e-6
        and (a.num_valid_queries, a.num_skipped) == (b.num_valid_queries, b.num_skipped)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results/bench_eval.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="evaluate_rank runs (best kept)")
    parser.add_argument("--loop-repeats", type=int, default=1)
    parser.add_argument("--num-query", type=int, default=MARKET_QUERIES)
    parser.add_argument("--num-gallery", type=int, default=MARKET_GALLERY)
    parser.add_argument("--num-ids", type=int, default=MARKET_IDS)
    args = parser.parse_args()

    data = market_like(args.seed, args.num_query, args.num_gallery, args.num_ids)
    load_before = os.getloadavg()
    fast, fast_times, fast_result = best_time(lambda: evaluate_rank(*data), args.repeats)
    loop, loop_times, loop_result = best_time(lambda: evaluate_rank_loop(*data), args.loop_repeats)
    if not agree(fast_result, loop_result):
        raise SystemExit(f"MISMATCH: vectorised {fast_result} vs loop {loop_result}")

    report = {
        "shape": list(data[0].shape),
        "seed": args.seed,
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": [load_before[0], os.getloadavg()[0]],
        "evaluate_rank_s": {"best": fast, "all": fast_times},
        "evaluate_rank_loop_s": {"best": loop, "all": loop_times},
        "speedup": loop / fast,
        "agree": True,
        "metrics": {**fast_result.as_dict(), "cmc_len": len(fast_result.cmc)},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    q, g = report["shape"]
    print(f"evaluate_rank, {q} x {g} random float32 distances, market1501 protocol")
    print(f"numpy, single-threaded; 1-min load average {load_before[0]:.2f}\n")
    print("| implementation | best of | time (s) | speed-up |")
    print("|---|---|---|---|")
    print(f"| evaluate_rank (vectorised) | {args.repeats} | {fast:.3f} | {loop / fast:.1f}x |")
    print(f"| evaluate_rank_loop (per query) | {args.loop_repeats} | {loop:.3f} | 1.0x |")
    m = fast_result
    print(
        f"\nagree: yes; rank-1 {m.rank(1):.5f}, mAP {m.mAP:.6f}, mINP {m.mINP:.6f}, "
        f"valid {m.num_valid_queries}, skipped {m.num_skipped}"
    )
    print(f"wrote {Path(args.out)}")


if __name__ == "__main__":
    main()
