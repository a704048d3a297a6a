"""Where a training step's time goes: a PyTorch profiler window over a few steps.

``StepProfile`` (a Lightning callback) and ``profile_steps`` (for a bare loop) record ``steps``
steps with the CPU and CUDA activities and summarise them as: wall time per step, GPU kernel
time per step (the GPU's busy time; the rest of the step the GPU waits for the host), the host
time per step spent inside the step's Python code, and the top operators by host and by device
time. ``bench_train.py --profile`` stores the summary beside its JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

TOP_OPS = 15


def _activities() -> list[ProfilerActivity]:
    cuda = torch.cuda.is_available()
    return [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def synced_now() -> float:
    """``time.perf_counter()`` once the GPU's queued work is done (on CUDA)."""
    _sync()
    return time.perf_counter()


def summarise(prof: profile, steps: int, wall_s: float) -> dict[str, Any]:
    """Per-step wall and kernel time, and the top operators, from a finished profile."""
    # device events, less the annotation ranges (e.g. ``Optimizer.step``) that span kernels
    device = [
        event
        for event in prof.events()
        if event.device_type == DeviceType.CUDA and not getattr(event, "is_user_annotation", False)
    ]
    kernels_us = sum(e.device_time for e in device if not e.name.startswith("Memcpy"))
    copies_us = sum(e.device_time for e in device if e.name.startswith("Memcpy"))
    averages = prof.key_averages()

    def top(key: str) -> list[dict[str, Any]]:
        ops = [e for e in averages if not getattr(e, "is_user_annotation", False)]
        rows = sorted(ops, key=lambda e: getattr(e, key), reverse=True)[:TOP_OPS]
        return [
            {
                "name": e.key,
                "calls_per_step": e.count / steps,
                "host_ms_per_step": e.self_cpu_time_total / 1000 / steps,
                "device_ms_per_step": e.self_device_time_total / 1000 / steps,
            }
            for e in rows
        ]

    wall_ms = 1000 * wall_s / steps
    kernel_ms = kernels_us / 1000 / steps
    return {
        "steps": steps,
        "wall_ms_per_step": wall_ms,
        "kernel_ms_per_step": kernel_ms,
        "memcpy_ms_per_step": copies_us / 1000 / steps,
        "gpu_busy_fraction": kernel_ms / wall_ms if wall_ms else None,
        "kernels_per_step": sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA)
        / steps,
        "top_by_host_time": top("self_cpu_time_total"),
        "top_by_device_time": top("self_device_time_total"),
    }


class StepProfile(L.Callback):
    """Profile training steps ``[start, start + steps)`` of a Lightning run."""

    def __init__(self, start: int, steps: int) -> None:
        self.start, self.steps = start, steps
        self.summary: dict[str, Any] | None = None
        self._prof: profile | None = None
        self._began = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step == self.start and self._prof is None:
            _sync()
            self._prof = profile(activities=_activities())
            self._prof.__enter__()
            self._began = time.perf_counter()
        elif step == self.start + self.steps and self._prof is not None and self.summary is None:
            self._finish()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._prof is not None and self.summary is None:
            self._finish()

    def _finish(self) -> None:
        _sync()
        wall = time.perf_counter() - self._began
        self._prof.__exit__(None, None, None)
        self.summary = summarise(self._prof, self.steps, wall)


def profile_steps(step: Callable[[], None], steps: int) -> dict[str, Any]:
    """Profile ``steps`` calls of ``step`` (a bare loop's step), after the caller's warm-up."""
    _sync()
    with profile(activities=_activities()) as prof:
        began = time.perf_counter()
        for _ in range(steps):
            step()
        _sync()
        wall = time.perf_counter() - began
    return summarise(prof, steps, wall)
