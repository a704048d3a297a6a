"""The benchmark's data-path comparison: attrnet's input path (uint8 cache + batch augmentation
on the training device) against the PIL + torchvision DataLoader over the same JPEG files, both
with Market's augmentation, interleaved, best of ``--data-repeats``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from typing import Any

import torch
from bench_loops import (  # run as a script: experiments/ is on sys.path
    pil_loader,
)
from bench_runs import MARKET_AUGMENT, NATIVE_SIZE, pil_transform
from hydra.utils import instantiate

from attrnet.config import compose_run_config
from attrnet.data.augment import train_batch

#: The data-path comparison reads the CPU default synthetic set: 600 train identities x 4 images.
DATA_PATH_SET = dict(num_train_ids=751, num_test_ids=100, images_per_id=4)
DATA_PATH_VAL_IDS = 151


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
    """attrnet's input path vs a PIL + torchvision loader at ``size``, interleaved, best of
    ``repeats``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = args.data_batch_size
    overrides = [
        *(f"data.source.{key}={value}" for key, value in DATA_PATH_SET.items()),
        f"data.source.height={NATIVE_SIZE[0]}",
        f"data.source.width={NATIVE_SIZE[1]}",
        f"data.val_count={DATA_PATH_VAL_IDS}",
        f"data.image_size=[{size[0]},{size[1]}]",
        f"data.batch_size={batch_size}",
        f"data.num_workers={args.data_workers}",
        f"data.pin_memory={device.type == 'cuda'}",
        *(f"data.{key}={value}" for key, value in MARKET_AUGMENT.items()),
    ]
    with tempfile.TemporaryDirectory() as folder:
        datamodule = instantiate(compose_run_config("train", folder, overrides).data)
    datamodule.prepare_data()
    started = time.perf_counter()
    datamodule.setup("fit")
    cache_s = time.perf_counter() - started
    paths = datamodule.train_frame["path"].tolist()
    plain = pil_loader(paths, pil_transform(size), batch_size, args.data_workers, pin_memory=False)
    fast_loader = datamodule.train_dataloader()
    normalize = datamodule.normalize.to(device)

    def fast_step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        images = batch["image"].to(device, non_blocking=True)
        return train_batch(images, size, normalize, **MARKET_AUGMENT)

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
