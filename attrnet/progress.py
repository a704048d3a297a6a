"""Progress as log lines: in the run's log always, and on the console where no terminal shows
Lightning's progress bar (a batch job, a pipe).

A bar drawn into a file shows nothing for minutes (Rich draws its final state only) or fills it
with carriage returns (tqdm). :class:`ProgressLog` writes a line every ``interval_s`` seconds
instead: epoch, batch, optimizer step, the batch's loss, images per second and the time left;
and one line per validation with the progress-bar metrics. Without a terminal it turns the bar
off and the lines go to the console too; on a terminal they are marked ``file_only`` (the
console's :class:`attrnet.run_log.FileOnlyFilter` drops them). It reads the loss only for a
line, so a GPU waits for nothing in between.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.data import extract_batch_size

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _shows_bar(trainer: L.Trainer) -> bool:
    """Lightning's progress bar is on and draws on a terminal (tqdm on stderr, Rich on stdout)."""
    bar = trainer.progress_bar_callback
    if bar is None:
        return False
    stream = sys.stderr if isinstance(bar, TQDMProgressBar) else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class ProgressLog(L.Callback):
    """Periodic progress lines (every ``interval_s`` seconds; 0: every batch) on the global
    rank 0: in the log beside Lightning's progress bar on a terminal, in its place (console
    and log) without one. ``trainer.enable_progress_bar=false`` turns both off."""

    def __init__(self, interval_s: float = 30.0) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0, got {interval_s}")
        self.interval_s = float(interval_s)
        self.active = False
        self._extra = {"file_only": False}  # the console shows the lines (no bar there)
        self._last = 0.0  # time of the last line
        self._images = 0  # training images (all ranks) since the last line or epoch start
        self._counted_from = 0.0  # ... which was then
        self._fit_start = (0.0, 0)  # time and optimizer step when fitting began

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        bar = trainer.progress_bar_callback
        self.active = trainer.is_global_zero and bar is not None
        self._extra = {"file_only": self.active and _shows_bar(trainer)}
        if self.active and not self._extra["file_only"]:
            bar.disable()
        self._last = time.monotonic()

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = (time.monotonic(), trainer.global_step)
        self._last = self._fit_start[0]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """img/s counts training time only: not the validation or the optimizer swap before."""
        self._images, self._counted_from = 0, time.monotonic()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self.active:
            return
        self._images += extract_batch_size(batch) * trainer.world_size
        since = time.monotonic() - self._counted_from
        if not self._due():
            return
        parts = [
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
            f"batch {batch_idx + 1}/{trainer.num_training_batches}",
            f"step {trainer.global_step}",
        ]
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:  # Lightning divides it by the accumulation: the batch's own loss
            parts.append(f"loss {float(loss) * trainer.accumulate_grad_batches:.4f}")
        parts.append(f"{self._images / max(since, 1e-9):.0f} img/s")
        self._images, self._counted_from = 0, time.monotonic()
        left = self._time_left(trainer)
        if left is not None:
            parts.append(f"{_duration(left)} left")
        log.info("  ".join(parts), extra=self._extra)

    def _time_left(self, trainer: L.Trainer) -> float | None:
        """The rest of the fit at this fit's pace so far (its validations included)."""
        start, first_step = self._fit_start
        done, total = trainer.global_step - first_step, trainer.estimated_stepping_batches
        if done <= 0 or not math.isfinite(total):
            return None
        return (time.monotonic() - start) / done * max(total - trainer.global_step, 0)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """A line now and then through a long validation or prediction."""
        if not self.active or trainer.sanity_checking or not self._due():
            return
        if trainer.predicting:
            name, batches = "prediction", trainer.num_predict_batches
        else:
            name, batches = "validation", trainer.num_val_batches
        log.info(f"{name}  batch {batch_idx + 1}/{batches[dataloader_idx]}", extra=self._extra)

    on_predict_batch_end = on_validation_batch_end

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """One line per validation with what the progress bar would show (e.g. ``val/mA``)."""
        if not self.active or trainer.sanity_checking:
            return
        shown = "  ".join(f"{k} {v:.4f}" for k, v in trainer.progress_bar_metrics.items())
        if not shown:  # e.g. the best checkpoint's validation after fitting: the report follows
            return
        fitting = trainer.state.fn == TrainerFn.FITTING
        where = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} " if fitting else ""
        log.info(f"{where}validation done  {shown}", extra=self._extra)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.active:
            took = time.monotonic() - self._fit_start[0]
            note = f"training done: {trainer.global_step} steps in {_duration(took)}"
            log.info(note, extra=self._extra)
