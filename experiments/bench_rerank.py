"""Benchmark: memory-bounded k-reciprocal re-ranking at full Market-1501 test scale.

3,368 query + 19,732 gallery random (seeded) features, clustered by identity so neighbour sets
look like real ones, for each requested dimension (32 = the study's attribute logits, 2048 = a
ResNet50 embedding). Each run is a fresh child process, so its peak RSS (getrusage) is its
own. Prints a markdown table and writes JSON. Also reports mAP before / after re-ranking.

    python experiments/bench_rerank.py [--dims 32 2048] [--out PATH.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from attrnet.io import atomic_write_text
from attrnet.retrieval import compute_distance, evaluate_rank, re_ranking

MARKET_QUERIES, MARKET_GALLERY, MARKET_IDS = 3368, 19732, 750


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def clustered(seed: int, dim: int, num_q: int, num_g: int, num_ids: int):
    """Identity centres plus per-image and per-camera noise; labels for scoring.

    Centres shrink as dim^-0.32, which keeps plain Euclidean mAP near 0.2-0.3 at both 32 and
    2048 dims (otherwise high-dimensional clusters separate perfectly: a trivial workload).
    """
    rng = np.random.default_rng(seed)
    spread = (32 / dim) ** 0.32
    centres = spread * rng.normal(size=(num_ids + 1, dim)).astype(np.float32)
    cam_shift = 0.5 * spread * rng.normal(size=(7, dim)).astype(np.float32)
    q_pids, g_pids = rng.integers(1, num_ids + 1, num_q), rng.integers(0, num_ids + 1, num_g)
    q_cams, g_cams = rng.integers(1, 7, num_q), rng.integers(1, 7, num_g)

    def feats(pids, cams):
        noise = rng.normal(size=(len(pids), dim)).astype(np.float32)
        return torch.from_numpy(centres[pids] + cam_shift[cams] + 0.9 * noise)

    return feats(q_pids, q_cams), feats(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def worker(dim: int, seed: int, sizes: tuple[int, int, int]) -> dict:
    query, gallery, q_pids, g_pids, q_cams, g_cams = clustered(seed, dim, *sizes)
    base_rss = peak_rss_gb()
    start = time.perf_counter()
    reranked = re_ranking(query, gallery)
    seconds = time.perf_counter() - start
    peak = peak_rss_gb()
    labels = (q_pids, g_pids, q_cams, g_cams)
    before = evaluate_rank(compute_distance(query, gallery), *labels)
    after = evaluate_rank(reranked, *labels)
    return {
        "dim": dim,
        "num_query": len(query),
        "num_gallery": len(gallery),
        "seconds": seconds,
        "peak_rss_gb": peak,
        "rss_before_rerank_gb": base_rss,
        "output_gb": reranked.numel() * 4 / 1024**3,
        "mAP_before": before.mAP,
        "mAP_after": after.mAP,
        "rank1_before": before.rank(1),
        "rank1_after": after.rank(1),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 2048])
    parser.add_argument("--out", default="experiments/results/bench_rerank.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--num-query", type=int, default=MARKET_QUERIES)
    parser.add_argument("--num-gallery", type=int, default=MARKET_GALLERY)
    parser.add_argument("--num-ids", type=int, default=MARKET_IDS)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = (args.num_query, args.num_gallery, args.num_ids)
    if args.worker:
        print(json.dumps(worker(args.worker, args.seed, sizes)))
        return

    runs = []
    for dim in args.dims:
        cmd = [sys.executable, __file__, "--worker", str(dim), "--seed", str(args.seed)]
        cmd += ["--threads", str(args.threads), "--num-query", str(args.num_query)]
        cmd += ["--num-gallery", str(args.num_gallery), "--num-ids", str(args.num_ids)]
        load = os.getloadavg()[0]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs.append({**json.loads(done.stdout.strip().splitlines()[-1]), "load_1min": load})
    atomic_write_text(args.out, json.dumps({"seed": args.seed, "runs": runs}, indent=2) + "\n")

    policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    print("k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3), clustered random features")
    print(f"OMP_WAIT_POLICY {policy}\n")
    print(
        "| dim | queries x gallery | threads | time (s) | peak RSS (GB) | output (GB) "
        "| mAP before -> after | 1-min load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['dim']} | {r['num_query']} x {r['num_gallery']} | {r['torch_threads']} "
            f"| {r['seconds']:.1f} | {r['peak_rss_gb']:.2f} | {r['output_gb']:.2f} "
            f"| {r['mAP_before']:.3f} -> {r['mAP_after']:.3f} | {r['load_1min']:.2f} |"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
