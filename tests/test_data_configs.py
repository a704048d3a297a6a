"""Every ``conf/data/*.yaml`` through the console scripts, on tiny real files written here:
one training step with ``attrnet-train``, test-split metrics, ``attrnet-data``, re-ID on a CSV."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from attrnet.cli import data as data_cli
from attrnet.cli import reid as reid_cli
from attrnet.cli import train as train_cli
from attrnet.data.errors import DataError
from attrnet.data.sources import SyntheticSource
from attrnet.models.loading import load_attribute_module
from attrnet.training import train
from tests.benchmark_files import write_generic_csv, write_pa100k, write_peta, write_rap
from tests.helpers import compose_config, reference_inputs

REPO = Path(__file__).resolve().parents[1]
DATA_CONFIGS = sorted(p.stem for p in (REPO / "conf" / "data").glob("*.yaml"))
ONE_STEP = [
    "data.image_size=[32,16]",
    "data.batch_size=4",
    "data.eval_batch_size=16",
    "data.num_workers=0",
    "data.pin_memory=false",
    "data.cache_images=false",
    "trainer.accelerator=cpu",
    "+trainer.max_steps=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "callbacks.validation_figures.num_images=2",
]


SYNTHETIC = dict(
    num_train_ids=10, num_test_ids=3, images_per_id=4, height=32, width=16, num_junk=4,
    num_distractors=4,
)  # fmt: skip


def _data_overrides(name: str, folder: Path) -> list[str]:
    """The ``data=`` choice and the overrides pointing it at tiny files written into ``folder``."""
    if name == "synthetic":
        return [f"data.source.{k}={v}" for k, v in SYNTHETIC.items()] + ["data.val_count=3"]
    if name in ("market1501", "course"):
        root = SyntheticSource(folder, **SYNTHETIC).prepare()
        layout = [] if name == "market1501" else [
            "data.source.train_dir=bounding_box_train",
            "data.source.query_dir=query",
            "data.source.test_dir=bounding_box_test",
        ]  # fmt: skip
        return [f"data.source.root={root}", "data.val_count=3", *layout]
    if name == "generic_csv":
        return [f"data.source.csv={write_generic_csv(folder)}"]
    if name == "peta":
        return [f"data.source.root={write_peta(folder)}"]
    if name == "pa100k":
        return [f"data.source.root={write_pa100k(folder)}"]
    if name == "rap":
        return [f"data.source.root={write_rap(folder)}"]
    raise AssertionError(f"conf/data/{name}.yaml has no test case: add one here")


def _run_script(main, name: str, run: Path, overrides: list[str], monkeypatch) -> None:
    """Run a console script's Hydra entry point in this process, as its command line would."""
    monkeypatch.setattr(sys, "argv", [name, *overrides, f"hydra.run.dir={run}"])
    main()


@pytest.mark.parametrize("name", DATA_CONFIGS)
def test_every_data_config_trains_one_step(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [f"data={name}", *_data_overrides(name, tmp_path / "data"), *ONE_STEP]
    _run_script(train_cli.main, "attrnet-train", tmp_path / "run", overrides, monkeypatch)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["summary"]["mA"] <= 1
    if name == "generic_csv":  # its val split has no positive of bag: said in the run's log
        log = (tmp_path / "run" / "train.log").read_text()
        assert "without a positive or a negative label in a split: val: bag (no positive)" in log
    has_test = name in ("generic_csv", "peta", "pa100k", "rap")
    assert ("test" in metrics) == has_test
    assert (tmp_path / "run" / "split.csv").is_file()


def test_generic_csv_test_split_metrics_and_reid_without_cameras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """All five split values: val rows are the validation set, test rows are scored after
    training (equal to an independent numpy mA of the best checkpoint), and attrnet-reid's
    Market-1501 protocol runs on the query/gallery rows with the same-camera rule off."""
    csv = write_generic_csv(tmp_path / "data")
    table = pd.read_csv(csv)
    run = tmp_path / "run"
    epochs = ["optimizer.first_epochs=1", "optimizer.second_epochs=1"]  # a best checkpoint
    one_epoch_each = [o for o in ONE_STEP if "max_steps" not in o] + epochs
    overrides = ["data=generic_csv", f"data.source.csv={csv}", *one_epoch_each]
    _run_script(train_cli.main, "attrnet-train", run, overrides, monkeypatch)
    printed = capsys.readouterr().out
    assert "Per attribute (test)" in printed and "test" in printed.split("Final metrics")[1]
    assert "Per attribute (test)" in (run / "train.log").read_text()  # the run keeps its log

    split = pd.read_csv(run / "split.csv")
    assert not (run / "split.json").exists()  # the CSV's own val rows, no identity draw
    for name in ("train", "val", "test"):
        expected = table.loc[table["split"] == name, "image"].map(lambda i: str(csv.parent / i))
        assert sorted(split.loc[split["split"] == name, "path"]) == sorted(expected)

    metrics = json.loads((run / "metrics.json").read_text())
    best = metrics["checkpoint"]
    test_rows = table[table["split"] == "test"]
    model = load_attribute_module(best).eval()
    images = reference_inputs([csv.parent / i for i in test_rows["image"]], (32, 16))
    with torch.no_grad():
        predicted = (torch.sigmoid(model(images)) > 0.5).numpy()
    truth = test_rows[["coat", "bag"]].to_numpy().astype(bool)
    tpr = (predicted & truth).sum(0) / np.maximum(truth.sum(0), 1)
    tnr = (~predicted & ~truth).sum(0) / np.maximum((~truth).sum(0), 1)
    assert metrics["test"]["summary"]["mA"] == pytest.approx(((tpr + tnr) / 2).mean(), abs=1e-6)

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = events.Scalars("test/mA")
    assert len(logged) == 1 and logged[0].value == pytest.approx(metrics["test"]["summary"]["mA"])

    reid_overrides = [
        "data=generic_csv",
        f"data.source.csv={csv}",
        f"ckpt_path={best}",
        "mode=market1501",
        "device=cpu",
        "num_ranked_lists=1",
    ]
    _run_script(reid_cli.main, "attrnet-reid", tmp_path / "reid", reid_overrides, monkeypatch)
    result = json.loads((tmp_path / "reid" / "reid_metrics.json").read_text())["results"]
    assert "Re-ID (market1501 protocol" in (tmp_path / "reid" / "reid.log").read_text()
    # without camera ids no gallery image is removed: every query keeps its two matches
    assert result["euclidean"]["num_valid_queries"] == 3
    assert result["euclidean"]["num_skipped"] == 0


def test_attrnet_data_summary_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dataset_summary.json in the issue's shape, counts equal to pandas counts of the CSV;
    PA-100K has no identities (null)."""
    csv = write_generic_csv(tmp_path / "data")
    run = tmp_path / "summary"
    overrides = ["data=generic_csv", f"data.source.csv={csv}"]
    _run_script(data_cli.main, "attrnet-data", run, overrides, monkeypatch)
    summary = json.loads((run / "dataset_summary.json").read_text())
    assert "Positives per attribute:" in (run / "data.log").read_text()
    table = pd.read_csv(csv)
    assert summary["attributes"] == ["coat", "bag"] and summary["skipped"] == {}
    assert list(summary["splits"]) == ["train", "val", "test", "query", "gallery"]
    single_class = {}
    for name, rows in table.groupby("split"):
        expected = {
            "images": len(rows),
            "identities": rows["person_id"].nunique(),
            "positives": {"coat": int(rows["coat"].sum()), "bag": int(rows["bag"].sum())},
        }  # no "unknown": the file has no empty cell
        assert summary["splits"][name] == expected
        flags = {
            "no_positive": [a for a in ("coat", "bag") if rows[a].max() == 0],
            "no_negative": [a for a in ("coat", "bag") if rows[a].min() == 1],
        }
        if name in ("train", "val", "test") and any(flags.values()):
            single_class[name] = flags
    assert single_class == {"val": {"no_positive": ["bag"], "no_negative": []}}  # the file's
    assert summary["single_class"] == single_class and summary["missing_images"] == {}

    root = write_pa100k(tmp_path / "pa100k")
    run = tmp_path / "pa100k_summary"
    _run_script(data_cli.main, "attrnet-data", run, ["data=pa100k", f"data.source.root={root}"],
                monkeypatch)  # fmt: skip
    summary = json.loads((run / "dataset_summary.json").read_text())
    assert summary["skipped"] == {"labels_without_images": 1, "images_without_labels": 0}
    assert {k: v["images"] for k, v in summary["splits"].items()} == {
        "train": 12, "val": 4, "test": 3
    }  # fmt: skip
    assert all(s["identities"] is None for s in summary["splits"].values())


RECIPES = ("peta_baseline", "peta_swap", "pa100k_baseline", "pa100k_swap", "rap_baseline")
CPU_RECIPE = [
    "model.net.pretrained=false",  # no ImageNet weights here
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    *[o for o in ONE_STEP if o.startswith("data.")],
]


@pytest.mark.parametrize("recipe", ["peta_baseline", "pa100k_swap"])
def test_recipes_train_and_score_the_test_split(
    recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The published recipe (Adam, plateau on val loss, clipping) and the swap variant run end
    to end at tiny size on the CPU: the plateau schedule steps on the logged val/loss."""
    dataset = recipe.split("_")[0]
    root = (write_peta if dataset == "peta" else write_pa100k)(tmp_path / "data")
    epochs = ["optimizer.epochs=2"] if "baseline" in recipe else [
        "optimizer.first_epochs=1", "optimizer.second_epochs=1"
    ]  # fmt: skip
    overrides = [f"experiment={recipe}", f"data.source.root={root}", *CPU_RECIPE, *epochs]
    _run_script(train_cli.main, "attrnet-train", tmp_path / "run", overrides, monkeypatch)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["test"]["summary"]) == set(metrics["summary"])
    config = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert "gradient_clip_val: 10.0" in config and "image_size:\n  - 32\n  - 16" in config


def test_recipes_compose_with_the_published_settings() -> None:
    for recipe in RECIPES:
        cfg = compose_config("train", "/tmp/unused", [f"experiment={recipe}"])
        assert cfg.data.source._target_.endswith(("PetaSource", "Pa100kSource", "RapSource"))
        assert cfg.model.net.pretrained and list(cfg.data.image_size) == [256, 192]
        assert cfg.data.batch_size == 64 and cfg.loss.strategy == "deepmar"
        phases = cfg.optimizer.phases
        assert sum(p.epochs for p in phases) == 30 and cfg.trainer.gradient_clip_val == 10.0
        if recipe.endswith("baseline"):
            (phase,) = phases
            assert (phase.optimizer, phase.lr, phase.weight_decay) == ("adam", 1e-4, 5e-4)
            assert phase.schedule == "plateau"
        else:
            assert [p.optimizer for p in phases] == ["adamw", "sgd"]


def test_reid_refuses_data_without_identities(tmp_path: Path) -> None:
    """PA-100K has no person ids: a reid step is refused before any training."""
    root = write_pa100k(tmp_path / "data")
    overrides = ["data=pa100k", f"data.source.root={root}", *ONE_STEP, "reid=default"]
    cfg = compose_config("train", tmp_path / "run", overrides)
    with pytest.raises(DataError, match="the reid step needs person identities"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
