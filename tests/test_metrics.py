"""AttributeMetrics against an independent numpy implementation of the PAR metrics."""

import numpy as np
import pandas as pd
import pytest
import torch

from attrnet.metrics import AttributeMetrics, per_attribute_table

NAMES = ["a", "b", "c", "no_pos", "no_pred", "e"]


def safe_div(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def numpy_metrics(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict:
    """Loop-based reference: label-based per attribute, example-based per sample."""
    pred = probs > threshold
    truth = targets == 1
    out: dict[str, float] = {}
    per: dict[str, list[float]] = {k: [] for k in ("precision", "recall", "f1", "accuracy", "mA")}
    for j, name in enumerate(NAMES):
        p, t = pred[:, j], truth[:, j]
        tp, fp = np.sum(p & t), np.sum(p & ~t)
        fn, tn = np.sum(~p & t), np.sum(~p & ~t)
        prec, rec = safe_div(tp, tp + fp), safe_div(tp, tp + fn)
        values = {
            "precision": prec,
            "recall": rec,
            "f1": safe_div(2 * prec * rec, prec + rec),
            "accuracy": (tp + tn) / len(p),
            "mA": (rec + safe_div(tn, tn + fp)) / 2,
        }
        for key, value in values.items():
            out[f"{key}/{name}"] = value
            per[key].append(value)
    out["mA"] = np.mean(per["mA"])
    out["macro_precision"] = np.mean(per["precision"])
    out["macro_recall"] = np.mean(per["recall"])
    out["macro_f1"] = np.mean(per["f1"])
    acc, prec, rec = [], [], []
    for i in range(len(pred)):
        P, T = set(np.flatnonzero(pred[i])), set(np.flatnonzero(truth[i]))
        acc.append(safe_div(len(P & T), len(P | T)))
        prec.append(safe_div(len(P & T), len(P)))
        rec.append(safe_div(len(P & T), len(T)))
    out["instance_accuracy"] = np.mean(acc)
    out["instance_precision"] = np.mean(prec)
    out["instance_recall"] = np.mean(rec)
    mp, mr = out["instance_precision"], out["instance_recall"]
    out["instance_f1"] = safe_div(2 * mp * mr, mp + mr)
    return out


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 203
    logits = rng.normal(0.0, 2.0, size=(n, len(NAMES))).astype(np.float32)
    targets = (rng.random((n, len(NAMES))) < [0.3, 0.5, 0.1, 0.0, 0.4, 0.6]).astype(np.float32)
    logits[:, NAMES.index("no_pred")] = -abs(logits[:, NAMES.index("no_pred")]) - 0.1
    logits[:5] = -5.0  # samples with no predicted positive
    targets[5:8] = 0.0  # samples with no true positive
    logits[6] = -5.0  # ... and one with neither
    return logits, targets


def assert_matches(result: dict, expected: dict) -> None:
    assert set(result) == set(expected)
    for key, value in expected.items():
        assert result[key].item() == pytest.approx(value, abs=1e-6), key


def test_matches_numpy_over_several_batches(data):
    logits, targets = data
    metric = AttributeMetrics(NAMES)
    for start in range(0, len(logits), 64):
        metric.update(
            torch.from_numpy(logits[start : start + 64]),
            torch.from_numpy(targets[start : start + 64]),
        )
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    expected = numpy_metrics(probs, targets)
    assert expected["recall/no_pos"] == 0.0 and expected["precision/no_pred"] == 0.0
    assert_matches(metric.compute(), expected)


def test_probabilities_flag_and_threshold(data):
    logits, targets = data
    probs = torch.sigmoid(torch.from_numpy(logits))
    metric = AttributeMetrics(NAMES, threshold=0.7, probabilities=True)
    metric.update(probs, torch.from_numpy(targets).long())
    assert_matches(metric.compute(), numpy_metrics(probs.double().numpy(), targets, 0.7))


def test_states_are_sum_reduced_for_ddp(data):
    logits, targets = data
    whole = AttributeMetrics(NAMES)
    whole.update(torch.from_numpy(logits), torch.from_numpy(targets))
    parts = [AttributeMetrics(NAMES) for _ in range(2)]
    parts[0].update(torch.from_numpy(logits[:100]), torch.from_numpy(targets[:100]))
    parts[1].update(torch.from_numpy(logits[100:]), torch.from_numpy(targets[100:]))
    merged = parts[0]
    merged.merge_state(parts[1])  # applies each state's dist_reduce_fx, as DDP sync does
    result, expected = merged.compute(), whole.compute()
    for key in expected:
        assert torch.allclose(result[key], expected[key], atol=1e-7), key


def test_perfect_predictions():
    targets = torch.tensor([[1, 0, 1], [0, 1, 1]])
    metric = AttributeMetrics(["x", "y", "z"])
    metric.update(targets.float() * 20 - 10, targets)
    result = metric.compute()
    for key in ("instance_accuracy", "instance_f1", "macro_precision", "f1/x"):
        assert result[key].item() == pytest.approx(1.0)
    # z has no negatives: TNR undefined -> 0, so mA/z = 0.5
    assert result["mA/z"].item() == pytest.approx(0.5)


def test_shape_check_and_names():
    metric = AttributeMetrics(["x", "y"])
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        metric.update(torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="unique"):
        AttributeMetrics(["x", "x"])


def test_per_attribute_table(data):
    logits, targets = data
    metric = AttributeMetrics(NAMES)
    metric.update(torch.from_numpy(logits), torch.from_numpy(targets))
    result = metric.compute()
    table = per_attribute_table(result, NAMES)
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == NAMES
    assert list(table.columns) == ["precision", "recall", "f1", "accuracy", "mA"]
    assert table.loc["b", "f1"] == pytest.approx(result["f1/b"].item())
