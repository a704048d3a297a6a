"""Dataset summaries: images, identities, positives and unknown labels per attribute for every
split, the attributes that lack a class in a split, and the image files that do not exist.

The summary reads the data only (no training, no decoding unless ``skip_bad_images``);
``attrnet-data`` prints it and writes ``dataset_summary.json``. Identities are ``None`` for a split
without person ids, positives and unknown ``None`` for a split without attribute labels (e.g.
Market's query and gallery).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from attrnet.data.checks import NAMES_SHOWN, single_class_by_split
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.splits import NO_ID
from attrnet.io import atomic_write_text


def split_summary(frame: pd.DataFrame, attributes: list[str]) -> dict[str, Any]:
    """Images, distinct identities, per-attribute positives and unknown labels of one table."""
    ids = frame.loc[frame["person_id"] != NO_ID, "person_id"]
    labelled = all(name in frame for name in attributes)
    return {
        "images": len(frame),
        "identities": int(ids.nunique()) if len(ids) else None,
        "positives": {n: int((frame[n] == 1).sum()) for n in attributes} if labelled else None,
        "unknown": {n: int(frame[n].isna().sum()) for n in attributes} if labelled else None,
    }


def dataset_summary(datamodule: AttributeDataModule) -> dict[str, Any]:
    """The summary of a datamodule whose images are assigned to splits (``assign_splits``; the
    train/val split is the one training would use): ``attributes``, ``splits`` (split ->
    ``split_summary``), ``single_class`` (split -> attributes with no positive / no negative,
    splits where all have both left out), ``missing_images`` (split -> count and first paths)
    and ``skipped`` (reason -> count)."""
    attributes = datamodule.attributes
    skipped = dict(datamodule.tables.skipped)
    if datamodule.skip_bad_images:
        skipped["unreadable_images"] = len(datamodule.skipped_images)
    splits = {
        name: split_summary(frame, attributes)
        for name, frame in datamodule.split_frames().items()
    }
    missing = {
        name: {"count": len(paths), "first": paths[:NAMES_SHOWN]}
        for name, paths in datamodule.missing_images.items()
    }
    return {
        "attributes": list(attributes),
        "splits": splits,
        "single_class": single_class_by_split(datamodule.split_frames(), attributes),
        "missing_images": missing,
        "skipped": skipped,
    }


def summary_tables(summary: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Tables for printing: ``sizes`` (images and identities per split), ``positives`` per
    attribute and split, and ``unknown`` likewise where any label is unknown."""
    splits = summary["splits"]
    sizes = pd.DataFrame(
        {name: {"images": s["images"], "identities": s["identities"]} for name, s in splits.items()}
    ).T.rename_axis("split")
    tables = {"sizes": sizes}
    for key in ("positives", "unknown"):
        counts = {name: s[key] for name, s in splits.items() if s[key] is not None}
        table = pd.DataFrame(counts, index=summary["attributes"]).rename_axis("attribute")
        if key == "positives" or table.to_numpy().any():
            tables[key] = table
    return tables


def write_summary(path: str | Path, summary: dict[str, Any]) -> Path:
    """Write the summary as JSON, atomically."""
    atomic_write_text(path, json.dumps(summary, indent=1))
    return Path(path)
