"""Attribute training with real components: Hydra configs, a Lightning Trainer, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from attrnet.attributes import CLASSIFICATION_COLUMNS
from attrnet.callbacks import OptimizerSwap
from attrnet.cli.predict import predict
from attrnet.cli.train import SUMMARY_METRICS, train
from attrnet.data.splits import IdentitySplit
from attrnet.models.backbone import AttributeResNet50
from attrnet.models.module import AttributeModule
from attrnet.predictions import read_prediction_csv
from tests.helpers import TINY_OVERRIDES, compose_config


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("model", ["resnet50", "resnet50_attention"])
def test_fit_validate_predict(tmp_path: Path, model: str, precision: str) -> None:
    cfg = compose_config(
        "train",
        tmp_path,
        [
            *TINY_OVERRIDES,
            f"model={model}",
            f"trainer.precision={precision}",
            "trainer.accelerator=cpu",
        ],
    )
    metrics = train(cfg)
    assert set(SUMMARY_METRICS) <= set(metrics) and 0.0 <= metrics["mA"] <= 1.0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["summary"]["mA"] == pytest.approx(metrics["mA"])
    assert len([k for k in saved["metrics"] if k.startswith("f1/")]) == 32
    split = IdentitySplit.load(tmp_path / "split.json")
    assert len(split.val_ids) == 3 and not set(split.train_ids) & set(split.val_ids)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file()

    query_dir = Path(instantiate(cfg.data.source).prepare()) / "query"
    predict_cfg = compose_config(
        "predict",
        tmp_path,
        [f"ckpt_path={last}", f"images_dir={query_dir}", f"precision={precision}"],
    )
    output = predict(predict_cfg)
    table = pd.read_csv(output)
    assert tuple(table.columns) == CLASSIFICATION_COLUMNS
    assert sorted(table["id"]) == sorted(p.name for p in query_dir.iterdir())
    assert read_prediction_csv(output).shape == (len(table), 29)


def test_tensorboard_scalars_figures_and_hparams(tmp_path: Path) -> None:
    train(compose_config("train", tmp_path, [*TINY_OVERRIDES, "trainer.accelerator=cpu"]))
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    expected = {
        "train/loss_epoch",
        "val/loss",
        "val/mA",
        "val/macro_f1",
        "val/instance_f1",
        "val_attr/f1/hat",
        "train/optimizer_phase",
    }
    assert expected <= scalars, expected - scalars
    assert {"val/f1_per_attribute", "val/predictions"} <= set(events.Tags()["images"])
    assert "hparams" in str(events.PluginTagToContent("hparams")) or events.PluginTagToContent(
        "hparams"
    )
    assert events.Images("val/predictions")[0].width > 100


class PhaseProbe(L.Callback):
    """Records the optimizer type, learning rate and SGD momentum at each epoch start."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, float]] = []
        self.momentum: dict[int, torch.Tensor] = {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        optimizer = trainer.optimizers[0]
        self.seen.append(
            (trainer.current_epoch, type(optimizer).__name__, optimizer.param_groups[0]["lr"])
        )
        state = optimizer.state.get(optimizer.param_groups[0]["params"][0], {})
        if "momentum_buffer" in state:
            self.momentum[trainer.current_epoch] = state["momentum_buffer"].clone()


PHASES = [
    {"optimizer": "adamw", "epochs": 1, "lr": 1e-3},
    {
        "optimizer": "sgd",
        "epochs": 2,
        "lr": 0.05,
        "warmup_epochs": 1,
        "warmup_start_factor": 0.1,
        "schedule": "cosine",
    },
]


def _fit(tmp_path: Path, max_epochs: int, ckpt_path: Path | None = None) -> PhaseProbe:
    cfg = compose_config("train", tmp_path, TINY_OVERRIDES)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = AttributeModule(
        AttributeResNet50(len(datamodule.attributes)),
        datamodule.attributes,
        datamodule.positive_ratio,
        optimizer_phases=PHASES,
    )
    probe = PhaseProbe()
    checkpoints = ModelCheckpoint(
        dirpath=tmp_path / "ckpt",
        save_top_k=-1,
        save_last=True,
        filename="epoch{epoch}",
        auto_insert_metric_name=False,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=[OptimizerSwap(), probe, checkpoints],
        logger=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        deterministic=True,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return probe


def test_optimizer_swap_changes_type_and_restarts_schedule(tmp_path: Path) -> None:
    probe = _fit(tmp_path, max_epochs=3)
    assert [(e, name) for e, name, _ in probe.seen] == [(0, "AdamW"), (1, "SGD"), (2, "SGD")]
    assert [lr for *_, lr in probe.seen] == pytest.approx([1e-3, 0.005, 0.05])


def test_resume_after_switch_keeps_sgd_and_its_state(tmp_path: Path) -> None:
    _fit(tmp_path, max_epochs=2)
    last = tmp_path / "ckpt" / "epoch1.ckpt"
    saved = torch.load(last, weights_only=True)["optimizer_states"][0]["state"][0][
        "momentum_buffer"
    ]
    resumed = _fit(tmp_path, max_epochs=3, ckpt_path=last)
    assert resumed.seen[0][:2] == (2, "SGD") and resumed.seen[0][2] == pytest.approx(0.05)
    torch.testing.assert_close(resumed.momentum[2], saved)


def test_resume_before_switch_switches_on_time(tmp_path: Path) -> None:
    _fit(tmp_path, max_epochs=1)
    resumed = _fit(tmp_path, max_epochs=3, ckpt_path=tmp_path / "ckpt" / "epoch0.ckpt")
    assert [(e, name) for e, name, _ in resumed.seen] == [(1, "SGD"), (2, "SGD")]
    assert [lr for *_, lr in resumed.seen] == pytest.approx([0.005, 0.05])
