"""Identity-disjoint train/val splits (seeded, saved with the run) and the study's re-ID split."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from attrnet.data.errors import DataError
from attrnet.io import atomic_write_text

#: The study kept 151 of Market-1501's 751 labelled identities for validation.
STUDY_VAL_FRACTION = 151 / 751


@dataclass
class IdentitySplit:
    """Which person ids train and which validate; never an identity in both."""

    train_ids: list[int]
    val_ids: list[int]
    seed: int

    def save(self, path: str | Path) -> None:
        """Write the split as JSON, atomically."""
        atomic_write_text(path, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> IdentitySplit:
        """Read a split saved by ``save``."""
        try:
            data = json.loads(Path(path).read_text())
            split = cls(
                [int(i) for i in data["train_ids"]],
                [int(i) for i in data["val_ids"]],
                int(data["seed"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(
                f"{path}: not a split file with train_ids, val_ids, seed ({error})"
            ) from None
        if set(split.train_ids) & set(split.val_ids):
            raise DataError(f"{path}: identities appear in both train and val")
        return split


def split_identities(
    person_ids: pd.Series | np.ndarray | list[int],
    *,
    val_count: int | None = None,
    val_fraction: float = STUDY_VAL_FRACTION,
    seed: int = 0,
) -> IdentitySplit:
    """Draw ``val_count`` identities (or ``round(val_fraction * n)``) for validation, by seed."""
    ids = np.unique(np.asarray(person_ids))
    count = val_count if val_count is not None else int(round(val_fraction * len(ids)))
    if not 0 < count < len(ids):
        raise DataError(
            f"cannot hold out {count} of {len(ids)} identities for validation; "
            "expected at least one identity on each side"
        )
    chosen = np.random.default_rng(seed).permutation(ids)
    val = np.sort(chosen[:count])
    train = np.sort(chosen[count:])
    return IdentitySplit(train.tolist(), val.tolist(), seed)


def study_reid_protocol(
    person_ids: pd.Series | np.ndarray, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The study's re-ID validation: one random image per identity is the query, the rest gallery.

    Identities with a single image contribute only to the gallery (a query needs a match).
    Returns row positions (query, gallery).
    """
    ids = np.asarray(person_ids)
    rng = np.random.default_rng(seed)
    queries = []
    for pid in np.unique(ids):
        rows = np.flatnonzero(ids == pid)
        if len(rows) > 1:
            queries.append(rng.choice(rows))
    query = np.sort(np.asarray(queries, dtype=np.int64))
    gallery = np.setdiff1d(np.arange(len(ids)), query)
    return query, gallery
