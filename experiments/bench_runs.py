"""The benchmark's timed runs, each called in a fresh subprocess by ``bench_train.py``: (c)
attrnet's Trainer on the real config, and the reference loops (a) plain and (b) PIL with the
same precision, memory format and batch; the Hydra overrides that describe one run.
"""

from __future__ import annotations

import tempfile
from typing import Any

import lightning as L
import torch
from bench_loops import (  # run as a script: experiments/ is on sys.path
    LoopSettings,
    loop_device,
    peak_memory,
    pil_loop,
    plain_loop,
)
from hydra.utils import instantiate
from omegaconf import OmegaConf
from step_profile import StepProfile, synced_now
from torchvision import transforms as T

from attrnet.config import compose_run_config
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from attrnet.models.network import resolve_channels_last
from attrnet.training import build_data_and_model

MARKET_TRAIN_IMAGES = 12_936
MARKET_AUGMENT = dict(flip=0.5, pad=10, erasing=0.5)
NATIVE_SIZE = (128, 64)


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

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start, self.epoch_first_step = synced_now(), trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None and trainer.global_step >= self.warmup_steps:
            self.start, self.start_step = synced_now(), trainer.global_step
        elif self.end is None and trainer.global_step >= self.last_step:
            self._stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = synced_now() - self.epoch_start
        steps = trainer.global_step - self.epoch_first_step
        complete = steps == trainer.num_training_batches  # not cut short by max_steps
        if complete and trainer.global_step <= self.last_step:
            self.epochs.append({"seconds": seconds, "steps": steps})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.end is None:
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        self.end, self.end_step = synced_now(), trainer.global_step


def preset_override(preset: str) -> str:
    """A hardware preset as the override that sets it up: gpu_4gb is an experiment (fp16 plus
    stage checkpointing and its batch), the others are trainer presets."""
    return "experiment=gpu_4gb" if preset == "gpu_4gb" else f"trainer={preset}"


def run_overrides(spec: dict[str, Any]) -> list[str]:
    """Hydra overrides of one benchmark run."""
    height, width = spec["size"]
    overrides = [
        preset_override(spec["preset"]),
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
        "channels_last": model.channels_last,
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
            channels_last=resolve_channels_last(cfg.model.net.channels_last, loop_device()),
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
