"""Fault injection for the reliability tests, added to real runs through Hydra overrides, e.g.
``+callbacks.kill._target_=tests.faults.KillAt +callbacks.kill.epoch=1``.

It lives in tests/ (imported with the repository root on ``PYTHONPATH``), not in the package:
killing or poisoning a run is a test device, not a user feature.
"""

from __future__ import annotations

import os
import signal

import lightning as L
import torch


class _AtBatch(L.Callback):
    """Acts once, at the start of batch ``batch`` of epoch ``epoch`` (see ``strike``)."""

    def __init__(self, epoch: int, batch: int = 1) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self.strike(pl_module, batch)

    def strike(self, pl_module: L.LightningModule, batch: dict) -> None:
        raise NotImplementedError


class KillAt(_AtBatch):
    """SIGKILL the training process at that batch: no cleanup, no exception handler, no
    checkpoint on the way out, as when a node dies."""

    def strike(self, pl_module: L.LightningModule, batch: dict) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class PoisonBatch(_AtBatch):
    """Fill the images of batch ``batch`` of epoch ``epoch`` with NaN, so its loss is NaN.

    ``seen`` keeps, per poisoned batch, the module and copies of its parameters at that moment.
    """

    seen: list[tuple[L.LightningModule, dict[str, torch.Tensor]]] = []

    def strike(self, pl_module: L.LightningModule, batch: dict) -> None:
        batch["image"].fill_(float("nan"))
        weights = {k: v.detach().clone() for k, v in pl_module.named_parameters()}
        PoisonBatch.seen.append((pl_module, weights))
