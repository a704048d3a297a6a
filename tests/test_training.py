"""Attribute training with real components: Hydra configs, a Lightning Trainer, TensorBoard."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from attrnet.attributes import CLASSIFICATION_COLUMNS
from attrnet.callbacks import OptimizerSwap
from attrnet.cli.predict import predict
from attrnet.data.splits import IdentitySplit
from attrnet.models.plots import GRID_COLOURS, GRID_LEGEND_HEIGHT
from attrnet.optim import OptimizerPlan
from attrnet.predictions import read_prediction_csv
from attrnet.training import SUMMARY_METRICS, train
from tests.helpers import TINY_OVERRIDES, compose_config, make_module


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("model", ["resnet50", "resnet50_attention"])
def test_fit_validate_predict(
    tmp_path: Path, model: str, precision: str, request: pytest.FixtureRequest
) -> None:
    if precision == "bf16-mixed":  # CPU bf16 kernels must never let unwritten memory through
        request.getfixturevalue("unwritten_memory_is_nan")
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
    metrics = train(cfg).metrics
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


def _hparams(events: EventAccumulator) -> tuple[Any, Any, Any]:
    """The run's HParams experiment, session start and session end, parsed."""
    content = events.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
    return (
        hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG]),
        hparams_metadata.parse_session_start_info_plugin_data(
            content[hparams_metadata.SESSION_START_INFO_TAG]
        ),
        hparams_metadata.parse_session_end_info_plugin_data(
            content[hparams_metadata.SESSION_END_INFO_TAG]
        ),
    )


def test_tensorboard_event_files_read_right(tmp_path: Path) -> None:
    """A real two-epoch run with an optimizer swap, its event files read back."""
    cfg = compose_config(
        "train",
        tmp_path,
        [*TINY_OVERRIDES, "trainer.accelerator=cpu", "trainer.log_every_n_steps=50"],
    )
    metrics = train(cfg).metrics
    events = EventAccumulator(
        str(tmp_path / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0}
    ).Reload()
    scalars = set(events.Tags()["scalars"])
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in scalars}
    values = {tag: [e.value for e in events.Scalars(tag)] for tag in scalars}
    # 7 training identities x 4 images, batches of 8 (the last partial one dropped): steps 0-2
    # and 3-5; Lightning logs an epoch's end and its validation at the epoch's last step
    epoch_ends = [2, 5]
    assert steps["train/loss_epoch"] == epoch_ends
    # short epochs still log several points although log_every_n_steps is 50
    assert len(steps["train/loss_step"]) >= 4
    # no val/* point before the first validation, none after the last epoch
    for tag in [t for t in scalars if t.startswith(("val/", "val_attr/"))]:
        assert steps[tag] == epoch_ends, tag
    assert max(values["epoch"]) == 1  # no phantom epoch from the final evaluation
    # the best checkpoint's evaluation: best/* at the step it was saved, equal to that epoch's
    best_step = steps["best/mA"]
    assert len(best_step) == 1 and best_step[0] in epoch_ends
    best_epoch = epoch_ends.index(best_step[0])
    assert values["best/epoch"] == [best_epoch]
    for name in SUMMARY_METRICS:
        assert values[f"best/{name}"][0] == pytest.approx(metrics[name], abs=1e-6)
        assert values[f"val/{name}"][best_epoch] == pytest.approx(metrics[name], abs=1e-6)
    # one learning-rate curve across the AdamW -> SGD swap, the switch in the Text tab
    assert sorted(t for t in scalars if "lr" in t.split("/")[-1]) == ["train/lr"]
    assert steps["train/lr"] == steps["train/loss_step"] == [0, 1, 2, 3, 4, 5]
    lrs = [cfg.optimizer.first_lr] * 3 + [cfg.optimizer.second_lr] * 3
    assert values["train/lr"] == pytest.approx(lrs)
    swap = events.Tensors("train/optimizer_swap/text_summary")
    assert [e.step for e in swap] == [3]  # the first step of the SGD epoch, as train/lr
    assert b"adamw -> sgd" in swap[0].tensor_proto.string_val[0]
    # images on the same global-step axis; the composed config as text at step 0
    for tag in ("val/predictions", "val/f1_per_attribute"):
        assert [e.step for e in events.Images(tag)] == epoch_ends, tag
    (config_text,) = events.Tensors("config/text_summary")
    assert config_text.step == 0
    assert b"first_lr: 0.0015" in config_text.tensor_proto.string_val[0]
    # the predictions grid has its colour legend above the pictures
    grid = Image.open(io.BytesIO(events.Images("val/predictions")[0].encoded_image_string))
    legend = np.asarray(grid)[:GRID_LEGEND_HEIGHT].reshape(-1, 3).astype(int)
    for colour in GRID_COLOURS.values():  # text ink, within the font's anti-aliasing
        assert (np.abs(legend - colour).max(axis=1) <= 20).sum() >= 20, colour
    # curated HParams, readable, with the final val/* and best/* metrics as columns
    experiment, start, end = _hparams(events)
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert hparams == {
        "dataset": "synthetic",
        "loss": "sqrt_inverse_frequency",
        "model": "resnet50",
        "objective": "attributes",
        "optimizer": "adamw 1 ep lr 0.0015 -> sgd 1 ep lr 0.001",
        "resolution": "32x32",
        "seed": 42,
        "train_batch_size": 8,
        "train_epochs": 2,
        "phase1_lr": 0.0015,
        "phase1_weight_decay": 0.0005,
        "phase2_lr": 0.001,
        "phase2_weight_decay": 0.0005,
    }
    columns = [m.name.tag for m in experiment.metric_infos]
    assert columns[:5] == ["best/mA", "val/mA", "best/macro_f1", "val/macro_f1", "best/instance_f1"]
    assert set(columns) == {f"{g}/{n}" for g in ("best", "val") for n in SUMMARY_METRICS} | {
        "best/epoch"
    }
    assert set(columns) <= scalars
    assert end.status == api_pb2.STATUS_SUCCESS
    # attributes at a glance: one Custom Scalars chart per metric matches every attribute
    (layout_event,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(layout_event.tensor_proto.string_val[0])
    charts = {c.title: c.multiline.tag for cat in layout.category for c in cat.chart}
    (pattern,) = charts["val f1 per attribute"]
    assert len([t for t in scalars if re.match(pattern, t)]) == 32
    assert "val_attr/f1/hat" in scalars


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
    module = make_module(
        datamodule.attributes, phases=PHASES, positive_ratio=datamodule.positive_ratio
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


class TwoGroupModule(L.LightningModule):
    """A linear model whose weight and bias train at different learning rates."""

    optimizer_plan = OptimizerPlan([{"optimizer": "sgd", "epochs": 1}])
    active_phase = 0

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).square().mean()

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        data = torch.utils.data.TensorDataset(torch.ones(4, 2))
        return torch.utils.data.DataLoader(data, batch_size=2)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{"params": [self.layer.weight], "lr": 0.1}, {"params": [self.layer.bias]}]
        return torch.optim.SGD(groups, lr=0.01)


def test_learning_rate_per_group_only_when_groups_differ(tmp_path: Path) -> None:
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        callbacks=[OptimizerSwap()],
        logger=L.pytorch.loggers.CSVLogger(tmp_path, name="csv", version=""),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(TwoGroupModule())
    table = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    rates = table.dropna(subset=["train/lr"])
    assert rates["step"].tolist() == [0, 1]  # both steps, one point each
    assert rates["train/lr/group0"].tolist() == rates["train/lr"].tolist() == [0.1, 0.1]
    assert rates["train/lr/group1"].tolist() == [0.01, 0.01]
