"""Dataset summaries: images, identities and positives per attribute for every split.

The summary reads the data only (no training); ``attrnet-data`` prints it and writes
``dataset_summary.json``. Identities are ``None`` for a split without person ids, positives
``None`` for a split without attribute labels (e.g. Market's query and gallery).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.splits import NO_ID
from attrnet.io import atomic_write_text


def split_summary(frame: pd.DataFrame, attributes: list[str]) -> dict[str, Any]:
    """Images, distinct identities and per-attribute positives of one image table."""
    ids = frame.loc[frame["person_id"] != NO_ID, "person_id"]
    labelled = all(name in frame for name in attributes)
    return {
        "images": len(frame),
        "identities": int(ids.nunique()) if len(ids) else None,
        "positives": {name: int(frame[name].sum()) for name in attributes} if labelled else None,
    }


def dataset_summary(datamodule: AttributeDataModule) -> dict[str, Any]:
    """``{"attributes", "splits": {split: split_summary}, "skipped": {reason: count}}`` of a
    set-up datamodule (its train/val split is the one training would use)."""
    attributes = datamodule.attributes
    skipped = dict(datamodule.tables.skipped)
    if datamodule.skip_bad_images:
        skipped["unreadable_images"] = len(datamodule.skipped_images)
    splits = {
        name: split_summary(frame, attributes)
        for name, frame in datamodule.split_frames().items()
    }
    return {"attributes": list(attributes), "splits": splits, "skipped": skipped}


def summary_tables(summary: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two tables for printing: images and identities per split; positives per attribute."""
    splits = summary["splits"]
    sizes = pd.DataFrame(
        {name: {"images": s["images"], "identities": s["identities"]} for name, s in splits.items()}
    ).T.rename_axis("split")
    positives = pd.DataFrame(
        {name: s["positives"] for name, s in splits.items() if s["positives"] is not None},
        index=summary["attributes"],
    ).rename_axis("attribute")
    return sizes, positives


def write_summary(path: str | Path, summary: dict[str, Any]) -> Path:
    """Write the summary as JSON, atomically."""
    atomic_write_text(path, json.dumps(summary, indent=1))
    return Path(path)
