"""Dataset summaries: images, identities, positives and unknown labels per attribute for every
split, the attributes that lack a class in a split, and the image files that do not exist.

The summary reads the data only (no training, no decoding unless ``skip_bad_images``);
``attrnet-data`` prints it and writes ``dataset_summary.json``. Identities are ``None`` for a split
without person ids, positives ``None`` for a split without attribute labels (e.g. Market's query
and gallery). Positives count known labels only; ``unknown`` (present only where a split has
unknown labels) counts the unknown cells of each attribute that has any.
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
    """Images, distinct identities, per-attribute positives and (when there are any) unknown
    labels of one image table."""
    ids = frame.loc[frame["person_id"] != NO_ID, "person_id"]
    labelled = all(name in frame for name in attributes)
    summary = {
        "images": len(frame),
        "identities": int(ids.nunique()) if len(ids) else None,
        "positives": {n: int((frame[n] == 1).sum()) for n in attributes} if labelled else None,
    }
    unknown = frame[attributes].isna().sum() if labelled else pd.Series(dtype=int)
    if unknown.any():
        summary["unknown"] = {name: int(n) for name, n in unknown.items() if n}
    return summary


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


def summary_tables(
    summary: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Three tables for printing: images and identities per split; positives per attribute;
    unknown labels per attribute (only the attributes and splits that have any; empty if none)."""
    splits = summary["splits"]
    sizes = pd.DataFrame(
        {name: {"images": s["images"], "identities": s["identities"]} for name, s in splits.items()}
    ).T.rename_axis("split")
    positives = pd.DataFrame(
        {name: s["positives"] for name, s in splits.items() if s["positives"] is not None},
        index=summary["attributes"],
    ).rename_axis("attribute")
    unknown = {name: s["unknown"] for name, s in splits.items() if "unknown" in s}
    order = [a for a in summary["attributes"] if any(a in u for u in unknown.values())]
    unknown_table = pd.DataFrame(unknown, index=order).fillna(0).astype(int)
    return sizes, positives, unknown_table.rename_axis("attribute")


def write_summary(path: str | Path, summary: dict[str, Any]) -> Path:
    """Write the summary as JSON, atomically."""
    atomic_write_text(path, json.dumps(summary, indent=1))
    return Path(path)
