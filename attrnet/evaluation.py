"""Attribute evaluation of a trained model on a held-out image table (e.g. the test split).

The test images never reach training; after training the best checkpoint is scored on them with
the same metrics as validation (``attrnet.metrics.AttributeMetrics``). Under DDP every rank
scores its share of the images, the logits are gathered, and every rank returns the full-set
figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from attrnet.checkpoints import CheckpointError, load_checkpoint
from attrnet.data.datamodule import AttributeDataModule
from attrnet.metrics import AttributeMetrics
from attrnet.models.module import AttributeModule
from attrnet.retrieval.features import extract_features
from attrnet.retrieval.gather import gather_rows, shard_indices


def evaluate_attributes(
    model: AttributeModule,
    datamodule: AttributeDataModule,
    frame: pd.DataFrame,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Metrics of ``model`` (with the weights of ``checkpoint`` when given) on ``frame``'s
    images and attribute columns: mA, instance and macro figures, and per-attribute ones."""
    if checkpoint is not None:
        state = load_checkpoint(checkpoint).get("state_dict")
        if state is None:
            raise CheckpointError(f"{checkpoint}: not a Lightning checkpoint (no state_dict)")
        model.load_state_dict(state)
    paths = frame["path"].tolist()
    shard = shard_indices(len(paths))
    loader = datamodule.image_loader([paths[i] for i in shard])
    local = extract_features(model, loader, "logits", device=device)
    logits = gather_rows(local, shard, len(paths))
    # every rank holds all rows already: no further reduction across processes
    metrics = AttributeMetrics(
        model.attribute_names, threshold=model.hparams.threshold, sync_on_compute=False
    )
    targets = torch.as_tensor(frame[model.attribute_names].to_numpy(np.float32, copy=True))
    metrics.update(logits, targets)
    return {name: float(value) for name, value in metrics.compute().items()}


def final_scalars(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """Final figures as logger tags: summaries as ``<prefix>/<name>``, per-attribute ones as
    ``<prefix>_attr/<name>``."""
    return {
        (f"{prefix}_attr/{name}" if "/" in name else f"{prefix}/{name}"): value
        for name, value in metrics.items()
    }
