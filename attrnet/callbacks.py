"""Training callbacks: optimizer swap between phases, per-epoch seeding, non-finite loss guard."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from attrnet.optim import phase_for_epoch


class OptimizerSwap(L.Callback):
    """Switch to the next optimizer phase at its first epoch, with a fresh schedule.

    The module owns the phase plan (``optimizer_phases``) and the active phase index, which it
    stores in checkpoints, so a resume rebuilds the right optimizer before its state is loaded.
    The switch is logged as ``train/optimizer_phase`` and printed.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        wanted = phase_for_epoch(pl_module.optimizer_phases, trainer.current_epoch)
        if wanted != pl_module.active_phase:
            old = pl_module.optimizer_phases[pl_module.active_phase]["name"]
            pl_module.active_phase = wanted
            trainer.strategy.setup_optimizers(trainer)
            new = pl_module.optimizer_phases[wanted]["name"]
            rank_zero_info(f"OptimizerSwap: epoch {trainer.current_epoch}: {old} -> {new}")
        pl_module.log(
            "train/optimizer_phase", float(pl_module.active_phase), on_epoch=True, on_step=False
        )


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed that depends only on (seed, epoch, rank)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class EpochSeed(L.Callback):
    """Reseed ``random``, NumPy and torch at each training epoch start from (seed, epoch, rank).

    Augmentation randomness then does not depend on what ran before (validation, a sanity check,
    a resume from a checkpoint), so a run resumed after a kill repeats the epochs it lost exactly.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch, trainer.global_rank)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class NonFiniteLossGuard(L.Callback):
    """Stop training before the backward pass of a NaN or infinite loss.

    The bad step never updates the weights, and checkpoints already written stay as they are.
    All ranks agree on the decision, so a distributed run stops together.
    """

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        raise NonFiniteLossError(
            f"non-finite training loss ({loss.detach().float().cpu().tolist()} on this rank) at "
            f"global step {trainer.global_step}, epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}; training stopped before this step "
            "changed the weights, and the checkpoints written so far are kept (resume from "
            "checkpoints/last.ckpt after fixing the cause: learning rate, data, precision)"
        )
