"""Unknown labels (NaN) end to end: left out of the loss, the loss weights' statistics, every
metric count and the summaries, checked against computations that only see the known cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
from hydra.utils import instantiate

from attrnet.cli import data as data_cli
from attrnet.cli import train as train_cli
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.errors import DataError
from attrnet.metrics import AttributeMetrics
from attrnet.models.loading import load_attribute_module
from attrnet.models.losses import WeightedBCEWithLogits, attribute_weights, positive_ratio
from attrnet.models.plots import GRID_COLOURS, prediction_grid
from tests.benchmark_files import RAP_ATTRIBUTES, write_rap
from tests.helpers import compose_config, make_datamodule, reference_inputs

NAMES = ["a", "b", "c", "d", "e"]


def _with_unknown(seed: int, rows: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and 0/1 targets with about a quarter of the cells unknown (NaN), one sample
    wholly unknown and one attribute with no known positive."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (rows, len(NAMES))).astype(np.float32)
    targets = rng.integers(0, 2, (rows, len(NAMES))).astype(np.float32)
    targets[rng.random(targets.shape) < 0.25] = np.nan
    targets[3] = np.nan
    targets[:, 4][targets[:, 4] == 1] = np.nan
    return torch.from_numpy(logits), torch.from_numpy(targets)


def numpy_masked_bce(logits: np.ndarray, targets: np.ndarray, wp, wn) -> float:
    """The weighted BCE summed over the known cells, divided by their number (float64)."""
    x, known = logits.astype(np.float64), ~np.isnan(targets)
    y = np.where(known, targets, 0.0)
    s = 1.0 / (1.0 + np.exp(-x))
    cell = -(np.asarray(wp) * y * np.log(s) + np.asarray(wn) * (1 - y) * np.log(1 - s))
    return float(cell[known].sum() / known.sum())


def numpy_known_metrics(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict:
    """PAR metrics by loops over the known cells only: per attribute the rows whose label is
    known, per sample the attributes whose label is known (samples with none are dropped)."""
    known, truth, pred = ~np.isnan(targets), targets == 1, probs > threshold
    out, per_ma = {}, []
    for j in range(targets.shape[1]):
        rows = known[:, j]
        p, t = pred[rows, j], truth[rows, j]
        tp, fp, fn, tn = (p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()
        tpr = tp / (tp + fn) if tp + fn else 0.0
        tnr = tn / (tn + fp) if tn + fp else 0.0
        out[f"accuracy/{j}"] = (tp + tn) / rows.sum()
        out[f"f1/{j}"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        per_ma.append((tpr + tnr) / 2)
    out["mA"] = float(np.mean(per_ma))
    acc, prec, rec = [], [], []
    for i in np.flatnonzero(known.any(axis=1)):
        cols = np.flatnonzero(known[i])
        P, T = set(cols[pred[i, cols]]), set(cols[truth[i, cols]])
        acc.append(len(P & T) / len(P | T) if P | T else 0.0)
        prec.append(len(P & T) / len(P) if P else 0.0)
        rec.append(len(P & T) / len(T) if T else 0.0)
    out["instance_accuracy"], out["instance_precision"] = np.mean(acc), np.mean(prec)
    out["instance_recall"] = np.mean(rec)
    mp, mr = out["instance_precision"], out["instance_recall"]
    out["instance_f1"] = 2 * mp * mr / (mp + mr) if mp + mr else 0.0
    return out


def test_loss_with_unknown_cells_is_the_loss_of_the_known_cells_alone() -> None:
    logits, targets = _with_unknown(0)
    pos, neg = attribute_weights(positive_ratio(targets), "deepmar")
    criterion = WeightedBCEWithLogits(pos, neg)
    x = logits.clone().requires_grad_(True)
    loss = criterion(x, targets)
    expected = numpy_masked_bce(logits.numpy(), targets.numpy(), pos.numpy(), neg.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the same cells with the unknown ones removed: one row of known cells, their own weights
    known = ~targets.isnan()
    columns = known.nonzero()[:, 1]
    removed = WeightedBCEWithLogits(pos[columns], neg[columns])
    y = logits.clone().requires_grad_(True)
    kept = removed(y[known][None], targets[known][None])
    assert loss.item() == pytest.approx(kept.item(), rel=1e-6)
    loss.backward()
    kept.backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-9) and torch.isfinite(x.grad).all()
    assert (x.grad[~known] == 0).all()  # an unknown cell teaches nothing
    # no unknown cell: the plain mean of before; nothing known: 0 with a gradient path
    full = torch.nan_to_num(targets, 0.0)
    plain = numpy_masked_bce(logits.numpy(), full.numpy(), pos.numpy(), neg.numpy())
    assert criterion(logits, full).item() == pytest.approx(plain, rel=1e-6)
    nothing = criterion(x, torch.full_like(targets, float("nan")))
    nothing.backward()
    assert nothing.item() == 0.0


def test_positive_ratio_counts_known_labels_only() -> None:
    _, targets = _with_unknown(1)
    expected = np.nanmean(targets.numpy().astype(np.float64), axis=0)
    assert np.allclose(positive_ratio(targets).numpy(), expected, atol=1e-7)
    assert positive_ratio(targets)[4] == 0.0  # no known positive
    with pytest.raises(ValueError, match="column 1 has no known target"):
        positive_ratio(torch.tensor([[0.0, float("nan")], [1.0, float("nan")]]))
    with pytest.raises(ValueError, match="only 0, 1 and NaN"):
        positive_ratio(torch.tensor([[0.0, 2.0]]))


def test_metrics_leave_unknown_cells_out_of_every_count() -> None:
    logits, targets = _with_unknown(2, rows=101)
    expected = numpy_known_metrics(torch.sigmoid(logits).numpy(), targets.numpy())
    metric = AttributeMetrics(NAMES)
    for rows in torch.arange(len(logits)).split(16):  # batches; states add up
        metric.update(logits[rows], targets[rows])
    got = {k: float(v) for k, v in metric.compute().items()}
    for key in ("mA", "instance_accuracy", "instance_precision", "instance_recall", "instance_f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    for j, name in enumerate(NAMES):
        assert got[f"accuracy/{name}"] == pytest.approx(expected[f"accuracy/{j}"], abs=1e-6)
        assert got[f"f1/{name}"] == pytest.approx(expected[f"f1/{j}"], abs=1e-6)
    # per attribute: the counts of that column with its unknown rows removed
    known = ~targets.isnan()
    for j, name in enumerate(NAMES):
        single = AttributeMetrics([name])
        rows = known[:, j]
        single.update(logits[rows, j : j + 1], targets[rows, j : j + 1])
        assert [int(metric.tp[j]), int(metric.fn[j]), int(metric.fp[j]), int(metric.tn[j])] == [
            int(single.tp[0]), int(single.fn[0]), int(single.fp[0]), int(single.tn[0])
        ]  # fmt: skip
    assert int(metric.instance_counts[0].sum()) == int(known.any(dim=1).sum())


def test_prediction_grid_shows_unknown_labels_as_unknown() -> None:
    """A positive prediction on an unknown label is drawn in grey, not red as a wrong one."""
    images = torch.zeros(1, 3, 16, 8)
    probabilities = torch.tensor([[0.9, 0.1]])

    def text_pixels(target: list[float]) -> tuple[int, int]:
        grid = prediction_grid(images, probabilities, torch.tensor([target]), ["a", "b"])
        text = grid[16 + 16 * 12 :].astype(int)  # below the legend and the picture
        red, green, blue = text[..., 0], text[..., 1], text[..., 2]
        reddish = int(((red - green > 60) & (red - blue > 60)).sum())
        grey = int(((red == green) & (green == blue) & (red < 200)).sum())
        return reddish, grey

    assert GRID_COLOURS["unknown"][0] == GRID_COLOURS["unknown"][1] == GRID_COLOURS["unknown"][2]
    unknown, wrong = text_pixels([float("nan"), 0.0]), text_pixels([0.0, 0.0])
    assert unknown[0] == 0 and unknown[1] > 0
    assert wrong[0] > 0 and wrong[1] == 0


def _known_labels(root: Path, names: list[str]) -> pd.DataFrame:
    """RAP labels by image name straight from the .mat (2 -> NaN), with plain scipy."""
    struct = scipy.io.loadmat(str(root / "RAP_annotation" / "RAP_annotation.mat"))
    struct = struct["RAP_annotation"][0, 0]
    images = [str(cell[0][0]) for cell in struct["imagesname"]]
    attributes = [str(cell[0][0]) for cell in struct["attribute_eng"]]
    labels = pd.DataFrame(struct["label"].astype(float), index=images, columns=attributes)
    return labels[names].replace(2.0, np.nan)


def test_datamodule_ratios_and_summary_count_unknown_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_rap(tmp_path / "rap")
    overrides = ["data=rap", f"data.source.root={root}", "data.val_fraction=0.25"]
    cfg = compose_config("dataset", tmp_path / "run", overrides)
    datamodule: AttributeDataModule = instantiate(cfg.data, cache_images=False)
    datamodule.setup("fit")
    labels = _known_labels(root, datamodule.attributes)
    train = labels.loc[datamodule.train_frame["image"]]
    assert train.isna().to_numpy().any()
    assert np.allclose(datamodule.positive_ratio, train.mean().to_numpy())  # pandas skips NaN

    monkeypatch.setattr(sys, "argv", ["attrnet-data", *overrides, f"hydra.run.dir={tmp_path}/s"])
    data_cli.main()
    summary = json.loads((tmp_path / "s" / "dataset_summary.json").read_text())
    for name, frame in datamodule.split_frames().items():
        counts = labels.loc[frame["image"]].isna().sum()
        expected = {k: int(v) for k, v in counts.items() if v}
        assert summary["splits"][name].get("unknown", {}) == expected
        positives = (labels.loc[frame["image"]] == 1).sum()
        assert summary["splits"][name]["positives"] == positives.astype(int).to_dict()

    bad = write_rap(tmp_path / "bad", all_unknown=4)
    source = instantiate(cfg.data.source, root=str(bad))
    datamodule = make_datamodule(source, cache_images=False)
    with pytest.raises(DataError, match=r"attr04: no known label in the train split"):
        datamodule.setup("fit")


def test_training_with_unknown_labels_equals_the_known_cells_computed_independently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real attrnet-train run on RAP files with unknown labels: its validation loss and
    metrics (and the test split's) equal a numpy computation over the known cells only, with
    loss weights from the known training labels."""
    root = write_rap(tmp_path / "rap")
    names = RAP_ATTRIBUTES[:4]
    run = tmp_path / "run"
    overrides = [
        "data=rap", f"data.source.root={root}", f"data.source.attributes=[{','.join(names)}]",
        "data.val_fraction=0.25", "loss=deepmar", "data.image_size=[32,16]", "data.batch_size=8",
        "data.eval_batch_size=4",  # several validation batches with different known counts
        "data.num_workers=0", "data.pin_memory=false", "trainer.accelerator=cpu",
        "optimizer.first_epochs=1", "optimizer.second_epochs=1", "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false", "callbacks.validation_figures.num_images=2",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["attrnet-train", *overrides])
    train_cli.main()
    result = json.loads((run / "metrics.json").read_text())
    split = pd.read_csv(run / "split.csv")
    split["image"] = split["path"].map(lambda p: Path(p).name)
    labels = _known_labels(root, names)
    train = labels.loc[split.loc[split["split"] == "train", "image"]].to_numpy()
    ratio = np.clip(np.nanmean(train, axis=0), 1e-3, 1 - 1e-3)
    wp, wn = np.exp(1 - ratio), np.exp(ratio)  # loss=deepmar
    model = load_attribute_module(result["checkpoint"]).eval()
    for part, metrics in (("val", result["metrics"]), ("test", result["test"]["metrics"])):
        rows = split[split["split"] == part]
        targets = labels.loc[rows["image"]].to_numpy()
        assert np.isnan(targets).any() and not np.isnan(targets).all(axis=0).any()
        images = reference_inputs(rows["path"].tolist(), (32, 16))
        with torch.no_grad():
            logits = model(images).double().numpy()
        expected = numpy_known_metrics(1 / (1 + np.exp(-logits)), targets)
        for key in ("mA", "instance_accuracy", "instance_precision", "instance_recall"):
            assert metrics[key] == pytest.approx(expected[key], abs=1e-6), (part, key)
        assert metrics["instance_f1"] == pytest.approx(expected["instance_f1"], abs=1e-6)
        if part == "val":
            loss = numpy_masked_bce(logits, targets, wp, wn)
            assert metrics["loss"] == pytest.approx(loss, rel=1e-5)
