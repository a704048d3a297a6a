"""ProgressLog with a real Trainer: lines in place of the bar without a terminal, beside it (for
the log file only) on one; the loss shown is the batch's own, also under gradient accumulation."""

from __future__ import annotations

import io
import logging
import re

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from attrnet.progress import ProgressLog


class _Regression(L.LightningModule):
    """A linear model that keeps every training batch's loss."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.losses.append(float(loss.detach()))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(x), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fit(tmp_path, caplog, **trainer_options) -> tuple[L.Trainer, _Regression, list]:
    generator = torch.Generator().manual_seed(0)
    inputs, targets = torch.randn(24, 5, generator=generator).split([4, 1], dim=1)
    data = TensorDataset(inputs, targets)
    model = _Regression()
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[ProgressLog(interval_s=0)],
        **trainer_options,
    )
    with caplog.at_level(logging.INFO, logger="attrnet.progress"):
        trainer.fit(model, DataLoader(data, batch_size=4), DataLoader(data, batch_size=8))
    records = [r for r in caplog.records if r.name == "attrnet.progress"]
    return trainer, model, records


@pytest.mark.parametrize("accumulate", [1, 2])
def test_lines_replace_the_bar_without_a_terminal(tmp_path, caplog, accumulate: int) -> None:
    trainer, model, records = _fit(tmp_path, caplog, accumulate_grad_batches=accumulate)
    assert not trainer.progress_bar_callback.is_enabled  # the bar stays off: lines instead
    assert not any(r.file_only for r in records)  # ... on the console too
    lines = [r.getMessage() for r in records if "img/s" in r.getMessage()]
    assert len(lines) == 12  # 6 batches x 2 epochs
    assert lines[-1].startswith(f"epoch 2/2  batch 6/6  step {12 // accumulate}  loss ")
    shown = float(re.search(r"loss (\d+\.\d+)", lines[-1]).group(1))
    assert shown == pytest.approx(model.losses[-1], abs=1e-4)
    validated = [r.getMessage() for r in records if "validation done" in r.getMessage()]
    assert [m.split("  ")[0] for m in validated] == [
        "epoch 1/2 validation done",
        "epoch 2/2 validation done",
    ]
    last = trainer.progress_bar_metrics["val/loss"]
    assert validated[-1].split("  ")[1] == f"val/loss {last:.4f}"


def test_on_a_terminal_the_lines_go_to_the_log_file_only(tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", _Terminal())  # Rich's bar draws on stdout
    trainer, _, records = _fit(tmp_path, caplog)
    assert trainer.progress_bar_callback.is_enabled
    assert records and all(r.file_only for r in records)


def test_no_progress_bar_means_no_lines(tmp_path, caplog) -> None:
    _, _, records = _fit(tmp_path, caplog, enable_progress_bar=False)
    assert records == []
