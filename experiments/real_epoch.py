"""(d) of the training benchmark: a real training run, validation and checkpoints included, and
the wall time of each of its epochs, to compare with the steady-state speed of (c).

The run is ``attrnet.training.train`` on the benchmark's config (the job ``attrnet-train``
runs) with ``trainer.max_epochs`` set; :class:`EpochClock`, added to the config's callbacks,
records each epoch from its start to the next one's (or the end of training), so an epoch's time
holds its training steps, its validation, its checkpoint writes and its logging.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import open_dict
from step_profile import synced_now  # run from bench_train.py: experiments/ is on sys.path

from attrnet.io import atomic_write_text
from attrnet.training import train


class EpochClock(L.Callback):
    """Wall time of every training epoch, end to end, and of its validation (loop, metrics and
    figures; Lightning runs the checkpoint callbacks after this one), written to ``path`` (JSON)
    when training ends; synchronises CUDA only at these edges."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.starts: list[float] = []
        self.steps: list[int] = []
        self.validation: list[float] = []
        self._validation_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.starts.append(synced_now())
        self.steps.append(trainer.num_training_batches)
        self.validation.append(0.0)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_start = synced_now()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validation[-1] += synced_now() - self._validation_start

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        edges = [*self.starts, synced_now()]
        epochs = [
            {"seconds": end - start, "steps": steps, "validation_s": validation}
            for start, end, steps, validation in zip(
                edges, edges[1:], self.steps, self.validation, strict=False
            )
        ]
        atomic_write_text(self.path, json.dumps(epochs))


def real_run(cfg: Any, epochs: int) -> dict[str, Any]:
    """Train ``cfg`` for ``epochs`` epochs as ``attrnet-train`` would; the epochs' wall times,
    the batch size and the validation images per epoch."""
    with tempfile.TemporaryDirectory() as folder:
        clock_file = Path(folder) / "epochs.json"
        with open_dict(cfg):
            cfg.paths.output_dir = folder
            cfg.trainer.max_epochs = epochs
            cfg.trainer.enable_progress_bar = False
            clock = {"_target_": f"{__name__}.EpochClock", "path": str(clock_file)}
            cfg.callbacks.epoch_clock = clock
        result = train(cfg)
        timed = json.loads(clock_file.read_text())
    return {
        "epochs": timed,
        "batch_size": int(cfg.data.batch_size),
        "best_mA": result.metrics["mA"],
    }


def epoch_ratio(real: dict[str, Any], steady_images_per_s: float) -> dict[str, float]:
    """The last epoch (past the warm-up of the first) against steady-state time x steps."""
    last = real["epochs"][-1]
    expected = last["steps"] * real["batch_size"] / steady_images_per_s
    return {
        "seconds": last["seconds"],
        "validation_s": last["validation_s"],
        "expected_s": expected,
        "ratio": last["seconds"] / expected,
    }
