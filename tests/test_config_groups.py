"""Each selectable config, chosen as a user types it (``group=name``), composes through Hydra
into the settings it documents, checked against values computed here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import ReduceLROnPlateau, SequentialLR

from attrnet.models.losses import attribute_weights
from attrnet.optim import build_optimizer, normalize_phase, scheduler_config
from tests.conftest import MAT_FILE, MINI_MARKET
from tests.helpers import compose_config

#: A positive ratio for the loss weights: p = 0.2.
RATIO = 0.2


def _compose(*overrides: str) -> DictConfig:
    """``conf/train.yaml`` with the user's overrides, Hydra's own section included."""
    with initialize_config_module("attrnet.conf", version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("loss=none", (1.0, 1.0)),
        ("loss=inverse_frequency", ((1 - RATIO) / RATIO, 1.0)),
        ("loss=deepmar", (math.exp(1 - RATIO), math.exp(RATIO))),
        ("loss=sqrt_deepmar", (math.exp((1 - RATIO) / 2), math.exp(RATIO / 2))),
    ],
)
def test_loss_choices_weigh_as_documented(choice: str, expected: tuple[float, float]) -> None:
    cfg = _compose(choice)
    assert cfg.loss.strategy == choice.split("=")[1]
    pos, neg = attribute_weights(torch.tensor([RATIO]), cfg.loss.strategy)
    assert (pos.item(), neg.item()) == pytest.approx(expected, rel=1e-6)


def _phases(cfg: DictConfig) -> list[dict]:
    return [normalize_phase(p) for p in OmegaConf.to_container(cfg.optimizer.phases, resolve=True)]


def test_optimizer_choices_build_their_optimizers_and_schedules() -> None:
    param = [torch.nn.Parameter(torch.zeros(2))]
    (plateau,) = _phases(_compose("optimizer=adam_plateau"))
    optimizer = build_optimizer(param, plateau)
    config = scheduler_config(optimizer, plateau)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 1e-4
    assert isinstance(config["scheduler"], ReduceLROnPlateau) and config["monitor"] == "val/loss"
    assert (config["scheduler"].factor, config["scheduler"].patience) == (0.1, 4)

    (sgd,) = _phases(_compose("optimizer=sgd"))
    optimizer = build_optimizer(param, sgd)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    assert isinstance(scheduler_config(optimizer, sgd)["scheduler"], SequentialLR)
    assert (sgd["epochs"], sgd["warmup_epochs"], sgd["step_size"]) == (100, 2, 40)


def test_trainer_choices(tmp_path: Path) -> None:
    cpu = compose_config("train", tmp_path, ["trainer=cpu"])
    trainer = instantiate(cpu.trainer, logger=False, enable_checkpointing=False)
    assert trainer.strategy.root_device.type == "cpu" and str(trainer.precision) == "32-true"
    gpu = _compose("trainer=gpu")
    assert (gpu.trainer.accelerator, gpu.trainer.precision) == ("gpu", "bf16-mixed")
    assert gpu.trainer.benchmark and gpu.model.net.channels_last == "auto"  # on CUDA


def test_market1501_choice_reads_the_real_files(tmp_path: Path) -> None:
    if not (MAT_FILE.is_file() and MINI_MARKET.is_dir()):
        pytest.skip("../shared/data is absent")
    cfg = _compose(
        "data=market1501",
        f"data.source.root={MINI_MARKET}",
        f"data.source.annotations={MAT_FILE}",
        "data.val_count=4",
    )
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert len(datamodule.attributes) == 32
    identities = {p.name[:4] for p in (MINI_MARKET / "bounding_box_train").glob("*.jpg")}
    frames = (datamodule.train_frame, datamodule.val_frame)
    assert sum(f["person_id"].nunique() for f in frames) == len(identities)


def test_course_choice_reads_the_study_layout() -> None:
    cfg = _compose("data=course", "data.source.root=/data/course")
    source = instantiate(cfg.data.source)
    assert type(source).__name__ == "CourseSource"
    assert (cfg.data.source.annotations, cfg.data.source.query_dir) == (
        "annotations_train.csv",
        "queries",
    )
    assert cfg.data.val_count == 151  # the study's 600 / 151 identity split


@pytest.mark.parametrize(
    "choice", ["experiment=peta_baseline", "experiment=pa100k_baseline", "experiment=rap_baseline"]
)
def test_recipe_choices_are_rethinking_of_par(choice: str) -> None:
    cfg = _compose(choice)
    (phase,) = _phases(cfg)
    assert cfg.data.source._target_.endswith(("PetaSource", "Pa100kSource", "RapSource"))
    assert (cfg.loss.strategy, phase["optimizer"], phase["lr"]) == ("deepmar", "adam", 1e-4)
    assert (phase["schedule"], phase["epochs"], phase["weight_decay"]) == ("plateau", 30, 5e-4)
    assert list(cfg.data.image_size) == [256, 192] and cfg.data.batch_size == 64
    assert cfg.model.net.pretrained and cfg.trainer.gradient_clip_val == 10.0


def test_dataset_recipes_are_the_par_recipes_with_their_data() -> None:
    """peta_baseline is par_baseline on PETA, and so on: one recipe, the data added."""
    for recipe, data, named_recipe in (
        ("experiment=par_baseline", "data=peta", "experiment=peta_baseline"),
        ("experiment=par_baseline", "data=rap", "experiment=rap_baseline"),
        ("experiment=par_swap", "data=pa100k", "experiment=pa100k_swap"),
    ):
        shared = OmegaConf.to_container(_compose(recipe, data))
        named = OmegaConf.to_container(_compose(named_recipe))
        assert shared.pop("task_name") == recipe.split("=")[1]
        assert named.pop("task_name") == named_recipe.split("=")[1]
        del shared["hydra"], named["hydra"]  # the overrides that chose them
        assert shared == named


def test_swap_recipe_choices_run_the_study_swap() -> None:
    for experiment in ("experiment=peta_swap", "experiment=pa100k_swap"):
        adamw, sgd = _phases(_compose(experiment))
        assert (adamw["optimizer"], adamw["epochs"], adamw["lr"]) == ("adamw", 10, 1e-4)
        assert (sgd["optimizer"], sgd["epochs"], sgd["lr"]) == ("sgd", 20, 1e-3)


def test_experiment_choices_sweep_what_their_tables_compare() -> None:
    loss = _compose("experiment=loss_ablation")
    assert loss.hydra.sweeper.params.loss.split(",") == [
        "none",
        "inverse_frequency",
        "sqrt_inverse_frequency",
        "deepmar",
        "sqrt_deepmar",
    ]
    optimizer = _compose("experiment=optimizer_ablation")
    assert optimizer.hydra.sweeper.params.optimizer == "sgd,adamw,swap"
    total = optimizer.optimizer.first_epochs + optimizer.optimizer.second_epochs
    assert optimizer.optimizer.epochs == total  # equal epochs for every optimizer
    table2 = _compose("experiment=table2_distance")
    assert list(table2.reid.distances) == ["euclidean", "weighted", "cosine", "random"]
    assert table2.hydra.sweeper.params.model == "resnet50,resnet50_attention"
