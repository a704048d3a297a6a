"""Benchmark: attrnet's training speed against the limit, per trainer preset, model and size.

For each (preset, model, size) it times, each in a fresh subprocess under the same conditions:

(a) the plain loop: the same network, precision, memory format and fused AdamW in a bare PyTorch
    loop on batches already normalised on the device (``bench_loops.plain_loop``): the limit;
(b) the usual input path: PIL + torchvision per-sample transforms in ``--pil-workers`` DataLoader
    workers, pinned, feeding the same loop (``bench_loops.pil_loop``);
(c) attrnet: the real Hydra config (``conf/train.yaml``) on the synthetic Market set (rendered at
    Market's native 128x64), a real Lightning Trainer with the config's callbacks and loggers
    (checkpointing off), timed after the warm-up by a callback,

and prints attrnet's images/s with its ratio to (a) and to (b). Images/s are steady state; the
Market epoch (12,936 images) is extrapolated; the synthetic epoch is measured. Peak memory is
``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` on a GPU, peak RSS on the CPU.
``--memory-cap-gib`` caps the CUDA allocator (``set_per_process_memory_fraction``) for presets
matching ``--cap-presets`` (default: gpu_4gb, as a 4 GB card). ``--profile N`` profiles N steps
of (a) and (c) (``step_profile.py``). Presets that need CUDA are skipped without it.

The data-path comparison times the fast path (uint8 cache + batch augmentation on the training
device) against the PIL + torchvision DataLoader over the same JPEG files, both with Market's
augmentation, interleaved, best of ``--data-repeats``.

    # CPU, quick: (a), (b), (c) at a small size (what the test suite runs)
    python experiments/bench_train.py --presets default --models resnet50 --sizes 64x32 \
        --batch-size 8 --train-ids 12 --val-ids 2 --warmup-steps 1 --steps 2 --skip-data-path
    # one GPU: the gpu and gpu_4gb presets, both models, 256x128, batch 128, 4 GB cap on gpu_4gb
    python experiments/bench_train.py --presets gpu gpu_4gb --sizes 256x128 --memory-cap-gib 3.5
    # extra Hydra overrides for the attrnet runs, e.g. torch.compile of the trunk
    python experiments/bench_train.py --presets gpu --override model.compile=true
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from bench_loops import (  # run as a script: experiments/ is on sys.path
    LoopSettings,
    pil_loader,
    pil_loop,
    plain_loop,
)
from hydra.utils import instantiate
from omegaconf import OmegaConf
from step_profile import StepProfile
from torchvision import transforms as T

from attrnet.config import compose_run_config
from attrnet.data.batch_augment import train_batch
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.sources import SyntheticSource
from attrnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from attrnet.io import atomic_write_text
from attrnet.training import build_data_and_model

MARKET_TRAIN_IMAGES = 12_936
MARKET_EPOCHS = 60
MARKET_AUGMENT = dict(flip=0.5, pad=10, erasing=0.5)
NATIVE_SIZE = (128, 64)
#: The data-path comparison reads the CPU default synthetic set: 600 train identities x 4 images.
DATA_PATH_SET = dict(num_train_ids=751, num_test_ids=100, images_per_id=4)
DATA_PATH_VAL_IDS = 151


# ------------------------------------------------------------------------------ training runs


class ThroughputTimer(L.Callback):
    """Times training steps ``[warmup_steps, warmup_steps + steps)`` and every complete training
    epoch inside that window (steps after it, e.g. profiled ones, are not timed).

    On CUDA it synchronises only at the window's and epochs' edges, never inside a step.
    """

    def __init__(self, warmup_steps: int, steps: int) -> None:
        self.warmup_steps, self.last_step = warmup_steps, warmup_steps + steps
        self.start: float | None = None
        self.start_step = 0
        self.end: float | None = None
        self.end_step = 0
        self.epoch_start, self.epoch_first_step = 0.0, 0
        self.epochs: list[dict[str, float]] = []

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start, self.epoch_first_step = self._now(), trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None and trainer.global_step >= self.warmup_steps:
            self.start, self.start_step = self._now(), trainer.global_step
        elif self.end is None and trainer.global_step >= self.last_step:
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds, steps = self._now() - self.epoch_start, trainer.global_step - self.epoch_first_step
        complete = steps == trainer.num_training_batches  # not cut short by max_steps
        if complete and trainer.global_step <= self.last_step:
            self.epochs.append({"seconds": seconds, "steps": steps})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.end is None:
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        self.end, self.end_step = self._now(), trainer.global_step


def run_overrides(spec: dict[str, Any]) -> list[str]:
    """Hydra overrides of one benchmark run."""
    height, width = spec["size"]
    overrides = [
        f"trainer={spec['preset']}",
        f"model={spec['model']}",
        f"data.image_size=[{height},{width}]",
        f"data.source.num_train_ids={spec['train_ids']}",
        f"data.val_count={spec['val_ids']}",
        f"data.source.images_per_id={spec['images_per_id']}",
        f"data.source.height={NATIVE_SIZE[0]}",
        f"data.source.width={NATIVE_SIZE[1]}",
        *(f"data.{key}={value}" for key, value in MARKET_AUGMENT.items()),
        "data.pin_memory=true",  # used only when CUDA is available
    ]
    if spec["batch_size"]:
        overrides.append(f"data.batch_size={spec['batch_size']}")
    if spec["workers"] is not None:
        overrides.append(f"data.num_workers={spec['workers']}")
    if spec["augment_on_device"] != "preset":
        overrides.append(f"data.augment_on_device={spec['augment_on_device']}")
    return overrides + list(spec["overrides"])


def compose(spec: dict[str, Any], folder: str) -> Any:
    return compose_run_config("train", folder, run_overrides(spec))


def needs_cuda(spec: dict[str, Any]) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        cfg = compose(spec, folder)
    return cfg.trainer.accelerator in ("gpu", "cuda")


def cap_memory(spec: dict[str, Any]) -> None:
    """Cap the CUDA allocator at ``memory_cap_gib`` (a smaller card), if set."""
    cap = spec.get("memory_cap_gib")
    if cap and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(cap * 2**30 / total)


def config_callbacks(cfg: Any) -> list[L.Callback]:
    """The run's own callbacks (NaN guard, epoch seeding, optimizer swap, lr monitor), without
    the checkpoint writers: the benchmark times training steps, not file writes."""
    return [
        instantiate(item)
        for item in (cfg.get("callbacks") or {}).values()
        if item is not None and "Checkpoint" not in item.get("_target_", "")
    ]


def attrnet_run(spec: dict[str, Any]) -> dict[str, Any]:
    """(c): one timed attrnet training run (called in a fresh subprocess)."""
    cap_memory(spec)
    with tempfile.TemporaryDirectory() as folder:
        cfg = compose(spec, folder)
        L.seed_everything(cfg.seed, workers=True)
        datamodule, model = build_data_and_model(cfg)
        timer = ThroughputTimer(spec["warmup_steps"], spec["steps"])
        last = spec["warmup_steps"] + spec["steps"]  # profiled after the timed window
        profiler = StepProfile(last, spec["profile"]) if spec["profile"] else None
        trainer = instantiate(
            cfg.trainer,
            callbacks=[*config_callbacks(cfg), timer, *([profiler] if profiler else [])],
            logger=[instantiate(item) for item in cfg.logger.values()],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            max_epochs=-1,
            max_steps=spec["warmup_steps"] + spec["steps"] + spec["profile"],
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        trainer.fit(model, datamodule=datamodule)
    batch, on_gpu = datamodule.batch_size, trainer.strategy.root_device.type == "cuda"
    images_per_s = (timer.end_step - timer.start_step) * batch / (timer.end - timer.start)
    complete = timer.epochs[1:] or timer.epochs[:1]
    epoch = complete[-1] if complete else None
    return {
        **spec,
        "precision": str(cfg.trainer.precision),
        "augment_on_device": datamodule.augment_on_device,
        "channels_last": bool(cfg.model.channels_last),
        "activation_checkpointing": OmegaConf.to_container(cfg.model.net, resolve=True)[
            "activation_checkpointing"
        ],
        "batch_size": batch,
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "timed_steps": timer.end_step - timer.start_step,
        "images_per_s": images_per_s,
        "market_epoch_s": MARKET_TRAIN_IMAGES / images_per_s,
        "synthetic_epoch": None
        if epoch is None
        else {
            "seconds": epoch["seconds"],
            "images": epoch["steps"] * batch,
            "includes_warmup": len(timer.epochs) == 1,
        },
        "peak_memory": peak_memory(on_gpu),
        "profile": profiler.summary if profiler else None,
    }


def reference_run(spec: dict[str, Any]) -> dict[str, Any]:
    """(a) or (b) with the precision, memory format and batch the preset's config gives."""
    cap_memory(spec)
    with tempfile.TemporaryDirectory() as folder:
        cfg = compose(spec, folder)
        datamodule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        settings = LoopSettings(
            batch_size=datamodule.batch_size,
            num_outputs=len(datamodule.attributes),
            attention=bool(cfg.model.net.attention),
            precision=str(cfg.trainer.precision),
            channels_last=bool(cfg.model.channels_last),
            warmup=spec["warmup_steps"],
            steps=spec["steps"],
        )
        size = tuple(spec["size"])
        if spec["kind"] == "plain":
            result = plain_loop(size, settings, profile=spec["profile"])
        else:
            paths = datamodule.train_frame["path"].tolist()
            result = pil_loop(paths, pil_transform(size), settings, workers=spec["pil_workers"])
    return {**spec, **result, "batch_size": settings.batch_size}


def peak_memory(on_gpu: bool) -> dict[str, Any]:
    if on_gpu:
        return {
            "kind": "cuda",
            "allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        }
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"kind": "peak_rss", "gib": rss_kib / 2**20}


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
    return attrnet_run(spec) if spec["kind"] == "attrnet" else reference_run(spec)


# ------------------------------------------------------------------------- data-path comparison


def pil_transform(size: tuple[int, int]) -> T.Compose:
    """The usual re-ID training transform on PIL images, with Market's augmentation."""
    return T.Compose(
        [
            T.Resize(size),
            T.RandomHorizontalFlip(MARKET_AUGMENT["flip"]),
            T.Pad(MARKET_AUGMENT["pad"]),
            T.RandomCrop(size),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            T.RandomErasing(MARKET_AUGMENT["erasing"], value=0),
        ]
    )


def images_per_s(
    batches: Any, process: Any, warmup: int, count: int, device: torch.device
) -> dict[str, float]:
    """Images per wall-clock second and per CPU second of this process over ``count`` batches
    after ``warmup`` (``batches`` restarts when exhausted). With no loader workers all the work
    is in this process, so the CPU figure is the cost without other processes' contention."""
    stream = itertools.chain.from_iterable(batches() for _ in itertools.count())
    seen, start, start_cpu = 0, 0.0, 0.0
    for index, batch in enumerate(stream):
        if index == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, start_cpu, seen = time.perf_counter(), time.process_time(), 0
        if index == warmup + count:
            break
        out = process(batch)
        seen += len(out)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"wall": seen / wall, "cpu": seen / cpu}


def data_path_comparison(args: argparse.Namespace, size: tuple[int, int]) -> dict[str, Any]:
    """Fast path vs PIL + torchvision loader at ``size``, interleaved, best of ``repeats``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = args.data_batch_size
    datamodule = AttributeDataModule(
        SyntheticSource(height=NATIVE_SIZE[0], width=NATIVE_SIZE[1], **DATA_PATH_SET),
        val_count=DATA_PATH_VAL_IDS,
        image_size=size,
        batch_size=batch_size,
        num_workers=args.data_workers,
        pin_memory=device.type == "cuda",
        augment_on_device=True,
        cache_size=NATIVE_SIZE,
        **MARKET_AUGMENT,
    )
    datamodule.prepare_data()
    started = time.perf_counter()
    datamodule.setup("fit")
    cache_s = time.perf_counter() - started
    paths = datamodule.train_frame["path"].tolist()
    plain = pil_loader(paths, pil_transform(size), batch_size, args.data_workers, pin_memory=False)
    fast_loader = datamodule.train_dataloader()

    def fast_step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images = batch["image"].to(device, non_blocking=True)
        return train_batch(images, size, **MARKET_AUGMENT)

    def plain_step(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return batch[0].to(device, non_blocking=True)

    fast, slow = [], []
    for _ in range(args.data_repeats):
        timing = (args.data_warmup, args.data_batches, device)
        fast.append(images_per_s(lambda: iter(fast_loader), fast_step, *timing))
        slow.append(images_per_s(lambda: iter(plain), plain_step, *timing))
    best = {
        f"{path}_{clock}": max(run[clock] for run in runs)
        for path, runs in (("fast", fast), ("pil", slow))
        for clock in ("wall", "cpu")
    }
    return {
        "size": list(size),
        "batch_size": batch_size,
        "workers": args.data_workers,
        "device": str(device),
        "train_images": len(paths),
        "cache_build_s": cache_s,
        "fast_images_per_s": best["fast_wall"],
        "pil_images_per_s": best["pil_wall"],
        "ratio": best["fast_wall"] / best["pil_wall"],
        "fast_images_per_cpu_s": best["fast_cpu"],
        "pil_images_per_cpu_s": best["pil_cpu"],
        "ratio_cpu_time": best["fast_cpu"] / best["pil_cpu"],
        "all": {"fast": fast, "pil": slow},
    }


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
    parser.add_argument(
        "--augment-on-device", choices=["true", "false", "auto", "preset"], default="preset"
    )
    parser.add_argument("--override", action="append", default=[], help="Hydra override (c)")
    parser.add_argument("--memory-cap-gib", type=float, default=None)
    parser.add_argument("--cap-presets", nargs="+", default=["gpu_4gb"])
    parser.add_argument("--profile", type=int, default=0, help="profile N steps of (a) and (c)")
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
            "augment_on_device": args.augment_on_device,
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
