"""Training callbacks: the optimizer swap between phases (e.g. AdamW, then SGD)."""

from __future__ import annotations

import lightning as L
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
