"""Attribute-recognition metrics as a DDP-safe ``torchmetrics.Metric``.

Label-based metrics come from per-attribute TP/FP/TN/FN counts, example-based (instance)
metrics from integer histograms of the per-sample ratios. All states are sum-reduced integers,
so the result over several processes equals the result on the whole set exactly.

Definitions (a prediction is positive where ``probability > threshold``):

- ``mA`` (label-based mean accuracy): mean over attributes of ``(TPR + TNR) / 2``.
- Instance metrics, with ``P``/``T`` the predicted/true positive attribute sets of a sample:
  ``instance_accuracy = mean |P & T| / |P | T|``, ``instance_precision = mean |P & T| / |P|``,
  ``instance_recall = mean |P & T| / |T|``, ``instance_f1 = 2 Prec Rec / (Prec + Rec)`` from those
  two means (Li et al., RAP; Jia et al., "Rethinking of PAR", 2020).
- Per attribute: ``precision = TP / (TP + FP)``, ``recall = TPR = TP / (TP + FN)``,
  ``f1 = 2 TP / (2 TP + FP + FN)``, ``accuracy = (TP + TN) / N``, ``mA = (TPR + TNR) / 2``.
- ``macro_precision/recall/f1`` (the study's Table 1): means over attributes of per-attribute
  precision, recall and F1 (each attribute's own F1, as scikit-learn's ``average="macro"``).

Undefined ratios are 0, as in the ``get_pedestrian_metrics`` reference code of "Rethinking of
PAR": a sample with empty ``P`` has precision 0, with empty ``T`` recall 0, with both empty
accuracy 0, and every sample counts in the mean (the RAP MATLAB code instead skips such samples).
An attribute without positives has TPR, recall and F1 0 (so its mA is TNR / 2), one without
negatives TNR 0, one without predicted positives precision 0. With the Market-1501 targets
``T`` is never empty (age is always one-hot).

Unknown targets (NaN: RAP's label 2, an empty generic-CSV cell) are left out of every count, as
if the cell were not in the data: an attribute's TP/FP/TN/FN (and ``accuracy``'s N) count its
known cells only, and a sample's ``P`` and ``T`` are taken over its known attributes only (a
prediction on an unknown cell is neither right nor wrong). A sample without any known attribute
is left out of the instance means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torchmetrics import Metric

PER_ATTRIBUTE_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "accuracy", "mA")


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """Elementwise ``num / den`` with 0 where ``den == 0``."""
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))


class AttributeMetrics(Metric):
    """Label-based (per attribute, mA, macro) and instance-based metrics for N attributes.

    ``update(preds, targets)`` takes logits (or probabilities with ``probabilities=True``) and
    0/1 targets (NaN: unknown), both (B, A); ``compute()`` returns a flat ``dict[str, Tensor]``
    with ``mA``, ``instance_{accuracy,precision,recall,f1}``, ``macro_{precision,recall,f1}`` and
    ``{precision,recall,f1,accuracy,mA}/<attribute name>``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    tp: torch.Tensor
    fp: torch.Tensor
    tn: torch.Tensor
    fn: torch.Tensor
    instance_counts: torch.Tensor

    def __init__(
        self,
        attribute_names: Sequence[str],
        threshold: float = 0.5,
        probabilities: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        names = list(attribute_names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"attribute_names must be non-empty and unique, got {names}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a probability in [0, 1], got {threshold}")
        self.attribute_names = names
        self.threshold = threshold
        self.probabilities = probabilities
        num = len(names)
        for state in ("tp", "fp", "tn", "fn"):
            self.add_state(state, torch.zeros(num, dtype=torch.long), dist_reduce_fx="sum")
        # Instance ratios as exact integer histograms: instance_counts[m, k, d] = number of
        # samples whose ratio m (accuracy, precision, recall) is k / d, with k = |P & T| and d
        # = |P | T|, |P|, |T|. Sums stay exact and need no float64 on the device (MPS has none).
        self.add_state("instance_counts", torch.zeros(3, num + 1, num + 1, dtype=torch.long), "sum")

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        """Accumulate a batch of logits/probabilities (B, A) and 0/1/NaN targets (B, A)."""
        num = len(self.attribute_names)
        if preds.ndim != 2 or preds.shape[1] != num or preds.shape != targets.shape:
            raise ValueError(
                f"expected preds and targets of shape (B, {num}), "
                f"got {tuple(preds.shape)} and {tuple(targets.shape)}"
            )
        probs = preds.float() if self.probabilities else preds.float().sigmoid()
        known = ~targets.isnan()
        predicted = (probs > self.threshold) & known
        truth = (targets == 1) & known
        # masked counts (torchmetrics' multilabel_stat_scores refuses a single attribute)
        self.tp += (predicted & truth).sum(dim=0)
        self.fp += (predicted & ~truth).sum(dim=0)
        self.tn += (known & ~predicted & ~truth).sum(dim=0)
        self.fn += (~predicted & truth).sum(dim=0)

        both = (predicted & truth).sum(dim=1)
        denominators = torch.stack(
            [(predicted | truth).sum(dim=1), predicted.sum(dim=1), truth.sum(dim=1)]
        )
        kind = torch.arange(3, device=preds.device)[:, None]
        flat = (kind * (num + 1) + both) * (num + 1) + denominators
        flat = flat[:, known.any(dim=1)]  # a sample without a known attribute counts nowhere
        counts = torch.bincount(flat.flatten(), minlength=self.instance_counts.numel())
        self.instance_counts += counts.view_as(self.instance_counts)

    def compute(self) -> dict[str, torch.Tensor]:
        """Flat metric dict of float32 scalars, computed in float64 on the CPU from the counts."""
        tp, fp, tn, fn = (s.cpu().double() for s in (self.tp, self.fp, self.tn, self.fn))
        tpr = _ratio(tp, tp + fn)
        tnr = _ratio(tn, tn + fp)
        per_attribute = {
            "precision": _ratio(tp, tp + fp),
            "recall": tpr,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": _ratio(tp + tn, tp + fp + tn + fn),
            "mA": (tpr + tnr) / 2,
        }
        counts = self.instance_counts.cpu().double()
        k = torch.arange(counts.shape[-1], dtype=torch.float64)
        fractions = _ratio(k[:, None], k[None, :])  # fractions[k, d] = k / d
        inst_acc, inst_prec, inst_rec = _ratio((counts * fractions).sum((1, 2)), counts[0].sum())
        results = {
            "mA": per_attribute["mA"].mean(),
            "instance_accuracy": inst_acc,
            "instance_precision": inst_prec,
            "instance_recall": inst_rec,
            "instance_f1": _ratio(2 * inst_prec * inst_rec, inst_prec + inst_rec),
            "macro_precision": per_attribute["precision"].mean(),
            "macro_recall": per_attribute["recall"].mean(),
            "macro_f1": per_attribute["f1"].mean(),
        }
        for metric, values in per_attribute.items():
            for name, value in zip(self.attribute_names, values, strict=True):
                results[f"{metric}/{name}"] = value
        return {key: value.to(self.tp.device, torch.float32) for key, value in results.items()}


def per_attribute_table(
    results: Mapping[str, torch.Tensor | float], attribute_names: Sequence[str]
) -> pd.DataFrame:
    """Rows = attributes, columns = precision/recall/f1/accuracy/mA, from ``compute()``'s dict."""
    rows = {
        name: [float(results[f"{metric}/{name}"]) for metric in PER_ATTRIBUTE_METRICS]
        for name in attribute_names
    }
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(PER_ATTRIBUTE_METRICS))
    table.index.name = "attribute"
    return table
