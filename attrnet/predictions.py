"""Turn attribute probabilities into the study's ``classification_test.csv`` (or a generic CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from attrnet.attributes import (
    ANNOTATION_FIELDS,
    CLASSIFICATION_COLUMNS,
    MARKET_TARGETS,
    decode,
    validate_annotations,
)
from attrnet.errors import DataError
from attrnet.io import atomic_open

#: Leading characters that make spreadsheet programs evaluate a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """Quote text that a spreadsheet would run as a formula (prefix it with ``'``)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def decode_predictions(
    probabilities: np.ndarray, attribute_names: list[str], threshold: float = 0.5
) -> pd.DataFrame:
    """The study's 1/2 coding (age 1-4) for Market's 32 targets, else 0/1 per attribute."""
    if list(attribute_names) == list(MARKET_TARGETS):
        return decode(probabilities, threshold)[list(CLASSIFICATION_COLUMNS[1:])]
    return pd.DataFrame(
        (np.asarray(probabilities) >= threshold).astype(int), columns=list(attribute_names)
    )


def prediction_table(
    names: list[str], probabilities: np.ndarray, attribute_names: list[str], threshold: float = 0.5
) -> pd.DataFrame:
    """One row per image: ``id`` (the name, spreadsheet-safe), then :func:`decode_predictions`."""
    table = decode_predictions(probabilities, attribute_names, threshold)
    table.insert(0, "id", [safe_cell(name) for name in names])
    return table


def write_prediction_csv(path: str | Path, table: pd.DataFrame) -> None:
    """Write the table as CSV atomically (a crash never leaves a half file)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, index=False)


def read_prediction_csv(path: str | Path) -> pd.DataFrame:
    """Read a ``classification_test.csv`` back: exact header, 1/2 coding; indexed by ``id``."""
    frame = pd.read_csv(path, dtype={"id": str})
    if tuple(frame.columns) != CLASSIFICATION_COLUMNS:
        raise DataError(f"{path}: header must be {','.join(CLASSIFICATION_COLUMNS)}")
    frame = frame.set_index("id")
    validate_annotations(frame[list(ANNOTATION_FIELDS)], str(path))
    return frame
