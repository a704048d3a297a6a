"""Training callbacks: optimizer swap between phases (and the learning-rate curve), per-epoch
seeding, non-finite loss guard, validation figures."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from attrnet.models.plots import attribute_bar_chart, prediction_grid
from attrnet.seeding import derived_seed
from attrnet.tensorboard import logging_step, summary_writers


class OptimizerSwap(L.Callback):
    """Switch to the next optimizer phase at its first epoch, with a fresh schedule, and log
    one learning-rate curve across the phases.

    The module owns the phase plan (``optimizer_plan``) and the active phase index, which it
    stores in checkpoints, so a resume rebuilds the right optimizer before its state is loaded.
    ``train/lr`` is logged at each epoch start and with the training scalars (every
    ``log_every_n_steps``), at their step: a Python float from the optimizer, no device read.
    ``train/lr/group<i>`` is added when parameter groups differ. The switch is printed, written
    to the Text tab (``train/optimizer_swap``) at its step and logged as ``train/optimizer_phase``.
    """

    def __init__(self) -> None:
        self._lr_logged_at: int | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        phases = pl_module.optimizer_plan.phases
        wanted = pl_module.optimizer_plan.phase_for_epoch(trainer.current_epoch)
        if wanted != pl_module.active_phase:
            old = phases[pl_module.active_phase]["name"]
            pl_module.active_phase = wanted
            trainer.strategy.setup_optimizers(trainer)
            new = phases[wanted]["name"]
            step = logging_step(trainer)
            note = f"epoch {trainer.current_epoch}, step {step}: {old} -> {new}"
            rank_zero_info(f"OptimizerSwap: {note}")
            for writer in summary_writers(trainer.loggers):
                writer.add_text("train/optimizer_swap", note, step)
        self._log_learning_rate(trainer)
        pl_module.log(
            "train/optimizer_phase", float(pl_module.active_phase), on_epoch=True, on_step=False
        )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        interval = trainer.log_every_n_steps
        if interval > 0 and (logging_step(trainer) + 1) % interval == 0:  # as Lightning's own
            self._log_learning_rate(trainer)

    def _log_learning_rate(self, trainer: L.Trainer) -> None:
        """One point per step at most (micro-batches of an accumulation share a step)."""
        step = logging_step(trainer)
        if step == self._lr_logged_at:
            return
        self._lr_logged_at = step
        rates = [float(group["lr"]) for group in trainer.optimizers[0].param_groups]
        values = {"train/lr": rates[0]}
        if len(set(rates)) > 1:
            values.update({f"train/lr/group{i}": rate for i, rate in enumerate(rates)})
        for logger in trainer.loggers:
            logger.log_metrics(values, step=step)


class EpochSeed(L.Callback):
    """Reseed ``random``, NumPy and torch at each training epoch start from (seed, epoch, rank).

    Augmentation randomness then does not depend on what ran before (validation, a sanity check,
    a resume from a checkpoint), so a run resumed after a kill repeats the epochs it lost exactly.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = derived_seed(self.seed, trainer.current_epoch, trainer.global_rank)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class _PendingCheck:
    """A step's "loss was not finite" flag on its way to the host, with where it happened."""

    flag: torch.Tensor
    event: torch.cuda.Event | None
    loss: torch.Tensor
    where: tuple[int, int, int]

    def ready(self) -> bool:
        """The flag has reached the host (always, off CUDA); never waits."""
        return self.event is None or self.event.query()

    def failed(self) -> bool:
        if self.event is not None:
            self.event.synchronize()
        return bool(self.flag > 0)


class _HostFlags:
    """A ring of pinned host slots and CUDA events, allocated once, that device flags are copied
    into without waiting (a pinned allocation and an event per step cost host time)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.host: torch.Tensor | None = None
        self.events: list[torch.cuda.Event] = []
        self.count = 0

    def start(
        self, flag: torch.Tensor, loss: torch.Tensor, where: tuple[int, int, int]
    ) -> _PendingCheck:
        if not flag.is_cuda:
            return _PendingCheck(flag, None, loss, where)
        if self.host is None:
            self.host = torch.zeros(self.slots, dtype=flag.dtype, pin_memory=True)
            self.events = [torch.cuda.Event() for _ in range(self.slots)]
        slot, self.count = self.count % self.slots, self.count + 1
        self.host[slot].copy_(flag, non_blocking=True)
        self.events[slot].record()
        return _PendingCheck(self.host[slot], self.events[slot], loss, where)


class NonFiniteLossGuard(L.Callback):
    """Stop training at a NaN or infinite loss before that step changes the weights.

    Checkpoints already written stay as they are, and all ranks agree, so a distributed run
    stops together. Reading the loss on the host before every backward pass would make each GPU
    step wait, so with ``deferred`` (default: on CUDA, when every optimizer is fused) the check
    stays on the device: the fused optimizers skip a bad step themselves (their ``found_inf``
    input, as under AMP's GradScaler: weights, moments and step counts unchanged), and the flag
    is read without waiting at a later step's start, once it has reached the host: at most
    ``max_lag`` steps later (waiting for it only then), and always before validation, at an
    epoch's end and before any checkpoint. A bad step itself never changes the weights.
    """

    def __init__(self, deferred: bool | None = None, max_lag: int = 2) -> None:
        if max_lag < 0:
            raise ValueError(f"max_lag must be >= 0, got {max_lag}")
        self.deferred = deferred
        self.max_lag = max_lag
        self._pending: list[_PendingCheck] = []
        self._flags = _HostFlags(max_lag + 2)  # never more than max_lag + 1 in flight
        self._window_bad: torch.Tensor | None = None  # any bad micro-batch since the last step

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        loss = loss.detach()
        where = (trainer.global_step, trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_idx)
        if not self._defers(trainer, loss):
            finite = bool(torch.isfinite(loss).all())
            if not trainer.strategy.reduce_boolean_decision(finite, all=True):
                raise _non_finite_error(loss, where)
            return
        bad = trainer.strategy.reduce((~torch.isfinite(loss).all()).float(), reduce_op="sum")
        bad = bad.clamp(max=1.0)
        window = self._window_bad
        self._window_bad = bad if window is None else torch.maximum(window, bad)
        self._pending.append(self._flags.start(bad, loss, where))

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Hand the fused step its skip flag: 1 if any micro-batch it accumulates was bad."""
        if self._window_bad is not None:
            optimizer.found_inf = self._window_bad  # read by the fused step kernels
            self._window_bad = None

    def _defers(self, trainer: L.Trainer, loss: torch.Tensor) -> bool:
        """Deferred checks need fused optimizers: only they can skip a step on the device."""
        wanted = loss.is_cuda if self.deferred is None else self.deferred
        return wanted and all(o.defaults.get("fused") for o in trainer.optimizers)

    def _settle(self, in_flight: int = 0) -> None:
        """Raise for the first pending step whose loss was not finite. Flags that reached the
        host are read; older ones are waited for while more than ``in_flight`` remain."""
        while self._pending:
            check = self._pending[0]
            if len(self._pending) <= in_flight and not check.ready():
                return
            self._pending.pop(0)
            if check.failed():
                self._pending = []
                raise _non_finite_error(check.loss, check.where)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._settle(in_flight=self.max_lag)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._settle()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._settle()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._settle()

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._settle()


def _non_finite_error(loss: torch.Tensor, where: tuple[int, int, int]) -> NonFiniteLossError:
    step, epoch, batch = where
    return NonFiniteLossError(
        f"non-finite training loss ({loss.float().cpu().tolist()} on this rank) at "
        f"global step {step}, epoch {epoch}, batch {batch}; training stopped before this step "
        "changed the weights, and the checkpoints written so far are kept (resume from "
        "checkpoints/last.ckpt after fixing the cause: learning rate, data, precision)"
    )


class ValidationFigures(L.Callback):
    """After each training validation, the per-attribute F1 bar chart and a grid of the first
    ``num_images`` validation images with their predictions, to TensorBoard at the scalars' step
    (nothing for other loggers, the sanity check, or the final evaluation)."""

    def __init__(self, num_images: int) -> None:
        self.num_images = num_images
        self._examples: dict[str, torch.Tensor] | None = None

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or self.num_images <= 0 or not isinstance(outputs, dict):
            return
        keep = self.num_images
        self._examples = {
            "images": batch["image"][:keep].detach().cpu(),
            "probabilities": torch.sigmoid(outputs["logits"][:keep].float()).cpu(),
            "targets": batch["target"][:keep].detach().cpu(),
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writers = summary_writers(trainer.loggers)
        if trainer.sanity_checking or not pl_module.logs_validation or not writers:
            return
        results, names = pl_module.last_val_metrics, pl_module.attribute_names
        step = pl_module.validation_step_position
        f1 = {name: results[f"f1/{name}"] for name in names}
        chart = attribute_bar_chart(f1, f"validation F1, epoch {trainer.current_epoch}")
        writers[0].add_figure("val/f1_per_attribute", chart, step)
        if self._examples is not None:
            grid = prediction_grid(
                self._examples["images"],
                self._examples["probabilities"],
                self._examples["targets"],
                names,
                pl_module.threshold,
            )
            writers[0].add_image("val/predictions", grid, step, dataformats="HWC")
