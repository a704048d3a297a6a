"""Split semantics of image tables (train/val/test/query/gallery), identity-disjoint train/val
splits (seeded, saved with the run), random image partitions and the study's re-ID split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from attrnet.data.errors import DataError
from attrnet.io import atomic_write_text

#: The study kept 151 of Market-1501's 751 labelled identities for validation.
STUDY_VAL_FRACTION = 151 / 751
#: The values of a table's ``split`` column: training pool, validation, held-out test (attribute
#: evaluation after training) and the re-ID query/gallery sets.
SPLITS = ("train", "val", "test", "query", "gallery")
#: The splits of labelled images used for attribute training and evaluation.
ATTRIBUTE_SPLITS = ("train", "val", "test")
#: Person and camera id of an image without one (e.g. PA-100K has no identities).
NO_ID = -1


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

    def check_covers(self, pool_ids: Sequence[int], path: str | Path) -> None:
        """Refuse a saved split (read from ``path``) that does not name exactly the identities
        of the training pool: the ones it leaves out would silently leave training, the ones it
        adds are not in this data (another dataset's split, or test identities)."""
        pool = set(np.unique(np.asarray(pool_ids)).tolist())
        named = set(self.train_ids) | set(self.val_ids)
        left_out, foreign = sorted(pool - named), sorted(named - pool)
        if not (left_out or foreign):
            return
        problems = []
        if left_out:
            problems.append(
                f"{len(left_out)} would silently leave training (e.g. {_some(left_out)})"
            )
        if foreign:
            problems.append(
                f"it names {len(foreign)} identities that are not in the pool (e.g. "
                f"{_some(foreign)})"
            )
        raise DataError(
            f"{path}: names {len(named & pool)} of the {len(pool)} identities of the training "
            f"pool; {'; '.join(problems)}; expected the split.json of a run on this data"
        )


def _some(ids: list[int], count: int = 5) -> str:
    """The first ``count`` ids, comma-separated."""
    return ", ".join(str(i) for i in ids[:count])


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


def check_split_values(splits: pd.Series, source: str, lines: Sequence[int]) -> None:
    """Refuse any ``split`` value outside ``SPLITS``, naming the file's line of the row."""
    bad = ~splits.isin(SPLITS)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(
            f"{source}: line {lines[row]}, column 'split': {splits.iloc[row]!r} is not a split; "
            f"expected one of {', '.join(SPLITS)}"
        )


def check_disjoint_identities(frame: pd.DataFrame, source: str) -> None:
    """Refuse a person id (other than ``NO_ID``) that appears in two of train/val/test."""
    rows = frame[frame["split"].isin(ATTRIBUTE_SPLITS) & (frame["person_id"] != NO_ID)]
    counts = rows.groupby("person_id")["split"].nunique()
    shared = counts[counts > 1]
    if len(shared):
        pid = shared.index[0]
        found = sorted(rows.loc[rows["person_id"] == pid, "split"].unique())
        raise DataError(
            f"{source}: person_id {pid} appears in {' and '.join(found)} "
            f"({len(shared)} identities shared); an identity must lie in one of train, val, test"
        )


def partition_images(
    count: int, sizes: tuple[int, int, int], seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Assign ``count`` images to train/val/test with ``sizes`` images each, by seed.

    Without ``groups`` the images are shuffled (the usual random PETA partition); with
    ``groups`` (one identity key per image) whole identities are shuffled and filled into the
    splits in order, so no identity crosses splits and the sizes are met as closely as whole
    identities allow (the last split takes the rest). Returns one split name per image.
    """
    if sum(sizes) != count:
        raise DataError(
            f"split sizes {sizes} add up to {sum(sizes)}, but the dataset has {count} images"
        )
    rng = np.random.default_rng(seed)
    if groups is None:
        labels = np.empty(count, dtype=object)
        order = rng.permutation(count)
        bounds = np.cumsum(sizes)[:-1]
        for name, rows in zip(ATTRIBUTE_SPLITS, np.split(order, bounds), strict=True):
            labels[rows] = name
        return labels
    keys, inverse = np.unique(groups, return_inverse=True)
    group_sizes = np.bincount(inverse, minlength=len(keys))
    order = rng.permutation(len(keys))
    # each identity goes to the split its first image would fall in, filling splits in order
    starts = np.cumsum(group_sizes[order]) - group_sizes[order]
    group_split = np.empty(len(keys), dtype=np.int64)
    group_split[order] = np.searchsorted(np.cumsum(sizes), starts, side="right")
    return np.asarray(ATTRIBUTE_SPLITS, dtype=object)[np.minimum(group_split, 2)][inverse]


def hold_out_validation(person_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which images of a training pool validate: ``round(fraction * n)`` of its ``n`` person
    ids with all their images, and ``round(fraction * m)`` of its ``m`` images without one
    (``NO_ID``, split image by image), drawn by seed. So no identity is on both sides, and the
    share holds for datasets that identify only part of their images (RAP)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the validation fraction must lie in (0, 1), got {fraction}")
    ids = np.asarray(person_ids)
    rng = np.random.default_rng(seed)
    known = np.unique(ids[ids != NO_ID])
    chosen = rng.permutation(known)[: int(round(fraction * len(known)))]
    held_out = np.isin(ids, chosen) & (ids != NO_ID)
    anonymous = np.flatnonzero(ids == NO_ID)
    held_out[rng.permutation(anonymous)[: int(round(fraction * len(anonymous)))]] = True
    if held_out.all() or not held_out.any():
        raise DataError(
            f"a validation fraction of {fraction} holds out {int(held_out.sum())} of the "
            f"{len(ids)} training images ({len(known)} identities, {len(anonymous)} images "
            "without one); expected at least one image on each side"
        )
    return held_out
