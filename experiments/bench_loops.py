"""Reference training loops for ``bench_train.py``: what attrnet's Trainer is measured against.

(a) ``plain_loop``: a torchvision ResNet50 with an N-way head trained by a bare PyTorch loop on
batches that are already normalised on the device (no input path at all), with the same
precision, memory format and fused optimizer as the attrnet preset. It is the speed limit of the
network itself.

(b) ``pil_loop``: the usual re-ID input path (PIL decode + torchvision per-sample transforms in
DataLoader workers, pinned memory) feeding the same loop.

Both time ``steps`` steps after ``warmup`` with device synchronisation at the window's edges only.
"""

from __future__ import annotations

import contextlib
import itertools
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from step_profile import profile_steps  # run as a script: experiments/ is on sys.path
from torch.utils.data import DataLoader, Dataset

from attrnet.models.backbone import AttributeResNet50

AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def loop_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reference_network(
    num_outputs: int, attention: bool, channels_last: bool, device: torch.device
) -> Any:
    """The same network attrnet trains (torchvision ResNet50 trunk, optional CBAM, N logits)."""
    model = AttributeResNet50(num_outputs, attention=attention, zero_init_residual=True)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


class _Stepper:
    """One optimisation step of the reference loop: autocast forward, BCE, backward, fused
    AdamW (with a GradScaler under fp16, as Lightning's ``16-mixed``)."""

    def __init__(self, model: Any, precision: str, device: torch.device) -> None:
        self.model, self.device = model, device
        self.dtype = AUTOCAST.get(precision)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = self.model(images)
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


def _timed(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    step: _Stepper,
    warmup: int,
    steps: int,
    batch_size: int,
) -> dict[str, float]:
    device = step.device
    start = 0.0
    for index, (images, targets) in enumerate(batches):
        if index == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        if index == warmup + steps:
            break
        step(images, targets)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * batch_size / seconds, "step_ms": 1000 * seconds / steps}


def peak_memory(on_gpu: bool) -> dict[str, Any]:
    """Peak CUDA memory allocated and reserved, or the process's peak RSS on the CPU."""
    if on_gpu:
        return {
            "kind": "cuda",
            "allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        }
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"kind": "peak_rss", "gib": rss_kib / 2**20}


@dataclass(frozen=True)
class LoopSettings:
    """What both reference loops share with the attrnet run they are compared with."""

    batch_size: int
    num_outputs: int
    attention: bool
    precision: str
    channels_last: bool
    warmup: int
    steps: int

    @property
    def layout(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def stepper(self, device: torch.device) -> _Stepper:
        torch.manual_seed(0)
        network = reference_network(self.num_outputs, self.attention, self.channels_last, device)
        return _Stepper(network, self.precision, device)


def plain_loop(
    size: tuple[int, int], settings: LoopSettings, profile: int = 0, distinct_batches: int = 4
) -> dict[str, Any]:
    """(a): the network alone on ``distinct_batches`` normalised batches kept on the device;
    ``profile`` > 0 profiles that many further steps (``step_profile.profile_steps``)."""
    device, batch = loop_device(), settings.batch_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step = settings.stepper(device)
    data = [
        (
            torch.randn(batch, 3, *size, device=device).contiguous(memory_format=settings.layout),
            (torch.rand(batch, settings.num_outputs, device=device) < 0.3).float(),
        )
        for _ in range(distinct_batches)
    ]
    cycle = itertools.cycle(data)
    result = _timed(cycle, step, settings.warmup, settings.steps, batch)
    result["peak_memory"] = peak_memory(device.type == "cuda")
    if profile:
        result["profile"] = profile_steps(lambda: step(*next(cycle)), profile)
    return result


class _PilImages(Dataset):
    """PIL decode + a torchvision transform per image, with a fixed random target vector."""

    def __init__(self, paths: list[str], transform: Any, num_outputs: int) -> None:
        self.paths, self.transform = paths, transform
        draws = torch.rand(len(paths), num_outputs, generator=torch.Generator().manual_seed(0))
        self.targets = (draws < 0.3).float()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB")), self.targets[index]


def pil_loader(
    paths: list[str],
    transform: Any,
    batch_size: int,
    workers: int,
    pin_memory: bool,
    num_outputs: int = 1,
) -> DataLoader:
    """The usual re-ID input path: shuffled (image, target) batches decoded by PIL and
    transformed per image by torchvision in ``workers`` DataLoader processes."""
    return DataLoader(
        _PilImages(paths, transform, num_outputs),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def pil_loop(
    paths: list[str], transform: Any, settings: LoopSettings, workers: int
) -> dict[str, Any]:
    """(b): the usual PIL + DataLoader input path (``workers`` processes, pinned) + the loop."""
    device = loop_device()
    loader = pil_loader(
        paths, transform, settings.batch_size, workers, device.type == "cuda", settings.num_outputs
    )

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in itertools.count():
            for images, targets in loader:
                yield (
                    images.to(device, non_blocking=True).contiguous(memory_format=settings.layout),
                    targets.to(device, non_blocking=True),
                )

    step = settings.stepper(device)
    result = _timed(batches(), step, settings.warmup, settings.steps, settings.batch_size)
    return {**result, "workers": workers}
