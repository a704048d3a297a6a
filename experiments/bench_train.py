"""Benchmark: attrnet's training speed against the limit, per trainer preset, model and size.

For each (preset, model, size) it times, each in a fresh subprocess under the same conditions:

(a) the plain loop: the same network, precision, memory format and fused AdamW in a bare PyTorch
    loop on batches already normalised on the device (``bench_loops.plain_loop``): the limit;
(b) the usual input path: PIL + torchvision per-sample transforms in ``--pil-workers`` DataLoader
    workers, pinned, feeding the same loop (``bench_loops.pil_loop``);
(c) attrnet: the real Hydra config (``conf/train.yaml``) on the synthetic Market set (rendered at
    Market's native 128x64), a real Lightning Trainer with the config's callbacks and loggers
    (checkpointing off), timed after the warm-up by a callback,
(d) with ``--real-epochs N``: a real run of N epochs (``attrnet.training.train``, validation
    and checkpoints included, ``real_epoch.py``), whose last epoch's wall time is compared with
    steady-state time x steps from (c),

and prints attrnet's images/s with its ratio to (a) and to (b). Images/s are steady state; the
Market epoch (12,936 images) is extrapolated; the synthetic epoch is measured. Peak memory is
``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` on a GPU, peak RSS on the CPU.
``--memory-cap-gib`` caps the CUDA allocator (``set_per_process_memory_fraction``) for presets
matching ``--cap-presets`` (default: gpu_4gb, as a 4 GB card). ``--profile N`` profiles N steps
of (a) and (c) (``step_profile.py``). Presets that need CUDA are skipped without it.

The data-path comparison times attrnet's input path (uint8 cache + batch augmentation on the
training device) against the PIL + torchvision DataLoader over the same JPEG files, both with
Market's augmentation, interleaved, best of ``--data-repeats``.

    # CPU, quick: (a), (b), (c) at a small size (what the test suite runs)
    python experiments/bench_train.py --presets default --models resnet50 --sizes 64x32 \
        --batch-size 8 --train-ids 12 --val-ids 2 --warmup-steps 1 --steps 2 --skip-data-path
    # one GPU: the gpu and gpu_4gb presets, both models, 256x128, batch 128, 4 GB cap on gpu_4gb
    python experiments/bench_train.py --presets gpu gpu_4gb --sizes 256x128 --memory-cap-gib 3.5
    # extra Hydra overrides for the attrnet runs, e.g. torch.compile of the trunk
    python experiments/bench_train.py --presets gpu --override model.net.compile=true
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from bench_data_path import data_path_comparison
from bench_runs import NATIVE_SIZE, attrnet_run, cap_memory, compose, needs_cuda, reference_run
from real_epoch import epoch_ratio, real_run

from attrnet.data.sources import SyntheticSource
from attrnet.io import atomic_write_text


def in_subprocess(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one spec (attrnet, plain or pil) in a fresh Python process; errors are recorded."""
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        command = [sys.executable, __file__, "--child", json.dumps(spec), "--out", str(result)]
        try:
            done = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {**spec, "error": f"timed out after {timeout:.0f} s"}
        if done.returncode != 0:
            return {**spec, "error": " / ".join(done.stderr.strip().splitlines()[-3:]) or "failed"}
        return json.loads(result.read_text())


def child(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "real":
        cap_memory(spec)
        with tempfile.TemporaryDirectory() as folder:
            return {**spec, **real_run(compose(spec, folder), spec["real_epochs"])}
    return attrnet_run(spec) if spec["kind"] == "attrnet" else reference_run(spec)


# ----------------------------------------------------------------------------------- reporting


def format_memory(run: dict[str, Any]) -> str:
    memory = run.get("peak_memory")
    if not memory:
        return "-"
    if memory.get("kind", "cuda") == "cuda":
        return f"{memory['allocated_gib']:.2f} / {memory['reserved_gib']:.2f} GiB"
    return f"{memory['gib']:.2f} GiB RSS"


def ratio(value: float, reference: dict[str, Any] | None) -> str:
    if not reference or "images_per_s" not in reference:
        return "-"
    return f"{value / reference['images_per_s']:.2f}"


def print_tables(report: dict[str, Any]) -> None:
    env = report["environment"]
    print(
        f"\n{env['device']}; torch {env['torch']}; {env['cpu_count']} CPUs; "
        f"OMP_NUM_THREADS={env['omp_num_threads']}; load {env['load_average_1min']}"
    )
    if report["runs"]:
        print(
            "\n| preset | model | size | batch | precision | cap (GiB) | (a) plain img/s "
            "| (b) PIL img/s | attrnet img/s | vs (a) | vs (b) | Market epoch (s) "
            "| peak alloc / reserved |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in report["runs"]:
        run, plain, pil = row["attrnet"], row.get("plain"), row.get("pil")
        size = "x".join(map(str, run["size"]))
        head = f"| {run['preset']} | {run['model']} | {size} |"
        if "skipped" in run or "error" in run:
            print(f"{head} {run.get('skipped') or run.get('error')} ||||||||||")
            continue
        cap = run.get("memory_cap_gib") or "-"
        cells = [
            f"{ref['images_per_s']:.0f}"
            if ref and "images_per_s" in ref
            else (ref.get("error", "-")[:60] if ref else "-")
            for ref in (plain, pil)
        ]
        print(
            f"{head} {run['batch_size']} | {run['precision']} | {cap} | {cells[0]} | {cells[1]} "
            f"| {run['images_per_s']:.1f} | {ratio(run['images_per_s'], plain)} "
            f"| {ratio(run['images_per_s'], pil)} | {run['market_epoch_s']:.1f} "
            f"| {format_memory(run)} |"
        )
    for row in report["runs"]:
        for kind in ("plain", "attrnet"):
            profile = (row.get(kind) or {}).get("profile")
            if isinstance(profile, dict):
                print(
                    f"profile {kind} {row['attrnet']['preset']} {row['attrnet']['model']}: "
                    f"wall {profile['wall_ms_per_step']:.2f} ms/step, kernels "
                    f"{profile['kernel_ms_per_step']:.2f} ms/step (GPU busy "
                    f"{profile['gpu_busy_fraction']:.0%}), {profile['kernels_per_step']:.0f} "
                    "kernels/step"
                )
    reals = [row["real"] for row in report["runs"] if "real" in row]
    if reals:
        print(
            "\n| preset | model | size | epochs | last epoch (s), all included "
            "| of which validation (s) | steady state x steps (s) | ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
    for real in reals:
        head = f"| {real['preset']} | {real['model']} | {'x'.join(map(str, real['size']))} |"
        if "last_epoch" not in real:
            print(f"{head} {real.get('error', 'no steady-state figure from (c)')} |||||")
            continue
        last = real["last_epoch"]
        print(
            f"{head} {len(real['epochs'])} | {last['seconds']:.2f} | {last['validation_s']:.2f} "
            f"| {last['expected_s']:.2f} | {last['ratio']:.2f} |"
        )
    if report["data_path"]:
        print(
            "\n| size | batch | workers | device | uint8 cache + batch aug (img/s) "
            "| PIL + torchvision (img/s) | ratio | per CPU second: fast / PIL (ratio) "
            "| cache build (s) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
    for row in report["data_path"]:
        size = "x".join(map(str, row["size"]))
        print(
            f"| {size} | {row['batch_size']} | {row['workers']} | {row['device']} "
            f"| {row['fast_images_per_s']:.0f} | {row['pil_images_per_s']:.0f} "
            f"| {row['ratio']:.1f}x | {row['fast_images_per_cpu_s']:.0f} / "
            f"{row['pil_images_per_cpu_s']:.0f} ({row['ratio_cpu_time']:.1f}x) "
            f"| {row['cache_build_s']:.1f} |"
        )


def parse_size(text: str) -> tuple[int, int]:
    height, width = text.lower().split("x")
    return int(height), int(width)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/results/bench_train.json")
    parser.add_argument("--presets", nargs="+", default=["gpu", "gpu_4gb"])
    parser.add_argument("--models", nargs="+", default=["resnet50", "resnet50_attention"])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(256, 128)])
    parser.add_argument("--batch-size", type=int, default=128, help="0: the preset's value")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100, help="timed steps after the warm-up")
    parser.add_argument("--workers", type=int, default=None, help="data.num_workers override")
    parser.add_argument("--override", action="append", default=[], help="Hydra override (c)")
    parser.add_argument("--memory-cap-gib", type=float, default=None)
    parser.add_argument("--cap-presets", nargs="+", default=["gpu_4gb"])
    parser.add_argument("--profile", type=int, default=0, help="profile N steps of (a) and (c)")
    parser.add_argument(
        "--real-epochs", type=int, default=0, help="(d): a real run of N epochs (0: none)"
    )
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--skip-pil", action="store_true")
    parser.add_argument("--pil-workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--train-ids", type=int, default=751, help="labelled identities")
    parser.add_argument("--val-ids", type=int, default=151, help="of which held out")
    parser.add_argument("--images-per-id", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-data-path", action="store_true")
    parser.add_argument("--data-batch-size", type=int, default=64)
    parser.add_argument("--data-workers", type=int, default=0)
    parser.add_argument("--data-warmup", type=int, default=2)
    parser.add_argument("--data-batches", type=int, default=30)
    parser.add_argument("--data-repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def training_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """(a), (b) and (c) for every preset x model x size, each in a fresh process."""
    rows = []
    for preset, model, size in itertools.product(args.presets, args.models, args.sizes):
        spec = {
            "kind": "attrnet",
            "preset": preset,
            "model": model,
            "size": list(size),
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup_steps,
            "steps": args.steps,
            "workers": args.workers,
            "overrides": args.override,
            "memory_cap_gib": args.memory_cap_gib if preset in args.cap_presets else None,
            "profile": args.profile,
            "pil_workers": args.pil_workers,
            "train_ids": args.train_ids,
            "val_ids": args.val_ids,
            "images_per_id": args.images_per_id,
        }
        if needs_cuda(spec) and not torch.cuda.is_available():
            rows.append({"attrnet": {**spec, "skipped": "skipped: the preset needs CUDA"}})
            continue
        row = {}
        for kind, skip in (("plain", args.skip_plain), ("pil", args.skip_pil), ("attrnet", False)):
            if not skip:
                print(f"{kind} {preset} {model} {size} ...", flush=True)
                row[kind] = in_subprocess({**spec, "kind": kind}, args.timeout)
        if args.real_epochs:
            print(f"real run {preset} {model} {size} ...", flush=True)
            real = {**spec, "kind": "real", "real_epochs": args.real_epochs}
            row["real"] = in_subprocess(real, args.timeout)
            if "epochs" in row["real"] and "images_per_s" in row["attrnet"]:
                steady = row["attrnet"]["images_per_s"]
                row["real"]["last_epoch"] = epoch_ratio(row["real"], steady)
        rows.append(row)
    return rows


def main() -> None:
    args = parse_args()
    if args.child:  # one run in this fresh process
        atomic_write_text(args.out, json.dumps(child(json.loads(args.child))))
        return

    load_before = os.getloadavg()[0]
    report: dict[str, Any] = {"runs": [], "data_path": []}
    if not args.skip_train:
        SyntheticSource(  # generate the set once, before the timed subprocesses
            num_train_ids=args.train_ids,
            images_per_id=args.images_per_id,
            height=NATIVE_SIZE[0],
            width=NATIVE_SIZE[1],
        ).prepare()
        report["runs"] = training_rows(args)
    if not args.skip_data_path:
        for size in args.sizes:
            print(f"data path {size} ...", flush=True)
            report["data_path"].append(data_path_comparison(args, size))
    report["environment"] = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu only",
        "torch": torch.__version__,
        "lightning": L.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "args": {k: v for k, v in vars(args).items() if k != "child"},
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print_tables(report)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
