"""Annotation readers: ``market_attribute.mat`` and the study's course CSV (the generic CSV has
its own module, ``attrnet.data.generic_csv``).

Identity-level readers return a frame indexed by ``person_id`` with the 27 annotated fields in
1/2 coding; ``attrnet.attributes.encode`` turns them into binary targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io

from attrnet.attributes import ANNOTATION_FIELDS, plain_value, validate_annotations
from attrnet.data.errors import DataError

COURSE_COLUMNS = ("id", *ANNOTATION_FIELDS)
MAT_SPLITS = ("train", "test")


def _require_file(path: Path, description: str = "annotation") -> None:
    if not path.is_file():
        raise DataError(f"{path}: {description} file does not exist")


def load_mat(path: Path, description: str = "annotation") -> dict[str, Any]:
    """A MATLAB file's variables; a missing or damaged file is a ``DataError`` naming it."""
    _require_file(path, description)
    try:
        return scipy.io.loadmat(str(path))
    except Exception as error:  # scipy raises several types for a damaged file
        raise DataError(f"{path}: not a readable MATLAB file ({error})") from None


def cell_strings(value: np.ndarray, source: str) -> list[str]:
    """A MATLAB cell array of strings as a list of Python strings."""
    try:
        return [str(np.asarray(cell).ravel()[0]) for cell in np.asarray(value).ravel()]
    except (IndexError, TypeError):
        raise DataError(f"{source}: expected a cell array of strings") from None


def _check_unique_ids(ids: pd.Series | pd.Index, source: str) -> None:
    duplicated = pd.Index(ids)[pd.Index(ids).duplicated()]
    if len(duplicated):
        raise DataError(
            f"{source}: duplicate identity {duplicated[0]} ({len(duplicated)} duplicate(s)); "
            "expected one row per person id"
        )


def read_market_attribute_mat(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read both splits of ``market_attribute.mat``, fields looked up by name (orders differ)."""
    path = Path(path)
    mat = load_mat(path)
    if "market_attribute" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: expected the key 'market_attribute', found {keys}")
    root = mat["market_attribute"]
    splits = {}
    for split in MAT_SPLITS:
        if split not in (root.dtype.names or ()):
            raise DataError(f"{path}: market_attribute has no '{split}' split")
        splits[split] = _read_mat_split(root[split][0, 0], f"{path} [{split}]")
    return splits


def _read_mat_split(struct: np.ndarray, source: str) -> pd.DataFrame:
    names = struct.dtype.names or ()
    missing = [f for f in (*ANNOTATION_FIELDS, "image_index") if f not in names]
    if missing:
        raise DataError(f"{source}: missing field(s) {missing}")
    extra = sorted(set(names) - {*ANNOTATION_FIELDS, "image_index"})
    if extra:
        raise DataError(f"{source}: unexpected field(s) {extra}")
    ids_raw = cell_strings(struct["image_index"][0, 0], source)
    try:
        person_ids = [int(i) for i in ids_raw]
    except ValueError:
        raise DataError(f"{source}: image_index must hold 4-digit identity strings") from None
    columns = {}
    for field in ANNOTATION_FIELDS:
        values = np.asarray(struct[field][0, 0]).ravel()
        if len(values) != len(person_ids):
            raise DataError(
                f"{source}: field {field!r} has {len(values)} values, expected {len(person_ids)}"
            )
        columns[field] = values.astype(np.int64)
    frame = pd.DataFrame(columns, index=pd.Index(person_ids, name="person_id"))
    _check_unique_ids(frame.index, source)
    validate_annotations(frame, source)
    return frame


def read_course_annotations(path: str | Path) -> pd.DataFrame:
    """Read the study's ``annotations_train.csv`` (``id`` + 27 fields, 1/2 coding)."""
    path = Path(path)
    _require_file(path)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from None
    missing = [c for c in COURSE_COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in COURSE_COLUMNS]
    if missing or extra:
        raise DataError(
            f"{path}: columns do not match the course layout: missing {missing}, extra {extra}; "
            f"expected {','.join(COURSE_COLUMNS)}"
        )
    ids = pd.to_numeric(frame["id"], errors="coerce")
    if ids.isna().any():
        row = int(ids.isna().to_numpy().argmax())
        raise DataError(
            f"{path}: row {row + 2}, column 'id': {plain_value(frame['id'][row])!r} "
            "is not a person id"
        )
    frame.index = pd.Index(ids.astype(np.int64), name="person_id")
    _check_unique_ids(frame.index, str(path))
    fields = frame[list(ANNOTATION_FIELDS)]
    validate_annotations(fields.set_axis(range(2, len(frame) + 2)), f"{path} (row = CSV line)")
    return fields.astype(np.int64)
