"""Checks of a dataset's split tables before anything is decoded: image files that do not exist
(one stat each) and attributes that lack a class (no positive or no negative) in a split."""

from __future__ import annotations

import os

import pandas as pd

from attrnet.data.errors import DataError
from attrnet.data.splits import ATTRIBUTE_SPLITS

#: How many file names a report or an error shows.
NAMES_SHOWN = 5


def find_missing(frames: dict[str, pd.DataFrame]) -> dict[str, list[str]]:
    """Per split, the image paths that are not files, in table order (splits without any are
    left out)."""
    missing = {
        name: [path for path in frame["path"] if not os.path.isfile(path)]
        for name, frame in frames.items()
    }
    return {name: paths for name, paths in missing.items() if paths}


def some_names(paths: list[str]) -> str:
    """The first ``NAMES_SHOWN`` paths, and how many more there are."""
    more = f" and {len(paths) - NAMES_SHOWN} more" if len(paths) > NAMES_SHOWN else ""
    return ", ".join(paths[:NAMES_SHOWN]) + more


def refuse_missing(missing: dict[str, list[str]], served: dict[str, pd.DataFrame]) -> None:
    """One ``DataError`` naming the count per split and the first files of ``missing`` that
    the ``served`` tables still hold (``skip_bad_images`` leaves missing labelled ones out)."""
    kept = {name: set(frame["path"]) for name, frame in served.items()}
    missing = {
        name: still
        for name, paths in missing.items()
        if (still := [path for path in paths if path in kept.get(name, ())])
    }
    if not missing:
        return
    total = sum(len(paths) for paths in missing.values())
    counts = ", ".join(f"{name} {len(paths)}" for name, paths in missing.items())
    first = [path for paths in missing.values() for path in paths]
    raise DataError(
        f"{total} image file(s) the data source lists do not exist ({counts}): "
        f"{some_names(first)}; fix the paths or the root folder (attrnet-data lists them; "
        "data.skip_bad_images=true trains without the missing labelled images)"
    )


def single_class_by_split(
    frames: dict[str, pd.DataFrame], attributes: list[str]
) -> dict[str, dict[str, list[str]]]:
    """Per attribute split (train, val, test) of ``frames``, the attributes that have no
    positive (no cell 1) and those with no negative (no cell 0); unknown cells count as
    neither. Splits where every attribute has both are left out."""
    flags = {}
    for split in ATTRIBUTE_SPLITS:
        if split in frames:
            values = frames[split][attributes]
            kinds = {
                "no_positive": [name for name in attributes if not (values[name] == 1).any()],
                "no_negative": [name for name in attributes if not (values[name] == 0).any()],
            }
            if any(kinds.values()):
                flags[split] = kinds
    return flags


def refuse_unlabelled(train: pd.DataFrame, attributes: list[str]) -> None:
    """Refuse attributes whose every training label is unknown: they cannot be learned, and
    their loss weight (from the positive ratio) is undefined."""
    if train.empty:
        raise DataError("the train split has no images (all of them left out or unreadable)")
    unlabelled = [name for name in attributes if train[name].isna().all()]
    if unlabelled:
        raise DataError(
            f"attribute(s) {', '.join(unlabelled)}: no known label in the train split (every "
            "cell unknown), so they cannot be learned; drop the column(s) or label them"
        )


def single_class_message(flags: dict[str, dict[str, list[str]]]) -> str | None:
    """One line naming, per split, the attributes without a positive or a negative (``flags``
    from ``single_class_by_split``), or ``None`` when every attribute has both."""
    parts = [
        f"{split}: {', '.join(names)} ({kind.replace('_', ' ')})"
        for split, kinds in flags.items()
        for kind, names in kinds.items()
        if names
    ]
    if not parts:
        return None
    return (
        "attributes without a positive or a negative label in a split: " + "; ".join(parts)
        + ". Such an attribute cannot be learned from train; in val/test its mA is TNR / 2 "
        "(no positive) or TPR / 2 (no negative), at most 0.5, whatever the model predicts"
    )

