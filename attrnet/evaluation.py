"""Attribute evaluation of a trained model on a held-out image table (e.g. the test split).

The test images never reach training; after training the best checkpoint is scored on them with
the same metrics as validation (``attrnet.metrics.AttributeMetrics``). The logits come from the
one inference path (``trainer.predict``): under the run's DDP Trainer every rank scores its
share of the images and holds all logits, so every rank returns the full-set figures.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import torch

from attrnet.data.datamodule import AttributeDataModule
from attrnet.inference.predict import run_module
from attrnet.metrics import AttributeMetrics
from attrnet.models.module import AttributeModule


def evaluate_attributes(
    model: AttributeModule,
    datamodule: AttributeDataModule,
    frame: pd.DataFrame,
    trainer: L.Trainer | None = None,
) -> dict[str, float]:
    """Metrics of ``model`` on ``frame``'s images and attribute columns: mA, instance and macro
    figures, and per-attribute ones. ``trainer`` predicts (default: one device, fp32)."""
    loader = datamodule.image_loader(frame["path"].tolist())
    logits = run_module(model, loader, ("logits",), trainer=trainer)["logits"]
    # every rank holds all rows already: no further reduction across processes
    metrics = AttributeMetrics(
        model.attribute_names, threshold=model.threshold, sync_on_compute=False
    )
    targets = torch.as_tensor(frame[model.attribute_names].to_numpy(np.float32, copy=True))
    metrics.update(torch.from_numpy(logits), targets)
    return {name: float(value) for name, value in metrics.compute().items()}


def final_scalars(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """Final figures as logger tags: summaries as ``<prefix>/<name>``, per-attribute ones as
    ``<prefix>_attr/<name>``."""
    return {
        (f"{prefix}_attr/{name}" if "/" in name else f"{prefix}/{name}"): value
        for name, value in metrics.items()
    }
