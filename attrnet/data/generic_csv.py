"""The generic CSV: any dataset as one table of images (image, person_id, optional camera_id and
split, one column per attribute with 1 = yes, 0 = no and an empty cell = unknown).

Everything that would make results wrong is refused with the file and its line number (the
physical line, blank lines and quoted line breaks counted): another separator, duplicated or
unnamed columns, rows of the wrong width, ids that are not integers, attribute values other than
0, 1 or empty, split names outside ``SPLITS``, image paths leaving the root, and the same image
file in two rows (which would let a test image reach training).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from attrnet.data.errors import DataError
from attrnet.data.splits import NO_ID, check_split_values

RESERVED_COLUMNS = ("image", "person_id", "camera_id", "split")
#: Separators a spreadsheet may have written instead of the comma, named in the error.
OTHER_SEPARATORS = {";": "';'", "\t": "a tab", "|": "'|'"}
DUPLICATES_SHOWN = 2


def read_generic_csv(path: str | Path, root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a generic CSV into the image table (``path`` = ``root`` / image, symbolic links kept
    as written) and its attribute names, every column that is not reserved.

    Attribute columns are float64: 0.0, 1.0, NaN where the cell is empty (unknown). ``split``
    takes train, val, test, query or gallery (no column: all train); no ``camera_id`` column
    means ``NO_ID``. Anything else is a ``DataError`` naming the file, line and column.
    """
    path = Path(path)
    root = os.path.abspath(root)
    header, header_line, records, lines = _read_records(path)
    frame = pd.DataFrame(records, columns=header)
    for column in ("image", "person_id"):
        if column not in frame.columns:
            similar = [name for name in header if name.lower() == column]
            hint = f" (found {similar[0]!r}; names are case-sensitive)" if similar else ""
            raise DataError(f"{path}: line {header_line}: no {column!r} column{hint}")
    attributes = [c for c in header if c not in RESERVED_COLUMNS]
    if not attributes:
        raise DataError(
            f"{path}: no attribute columns; expected 0/1 columns besides {list(RESERVED_COLUMNS)}"
        )
    where = _Where(path, lines)
    table = pd.DataFrame({"image": frame["image"]})
    table["path"] = [
        _inside(root, name, where, row) for row, name in enumerate(frame["image"])
    ]
    table["person_id"] = _integers(frame["person_id"], where, "person_id")
    table["camera_id"] = (
        _integers(frame["camera_id"], where, "camera_id") if "camera_id" in frame else NO_ID
    )
    table["split"] = frame.get("split", "train")
    check_split_values(table["split"], str(path), lines)
    for name in attributes:
        table[name] = _labels(frame[name], where, name)
    _refuse_duplicate_images(table, where)
    return table[["path", "image", "person_id", "camera_id", "split", *attributes]], attributes


class _Where:
    """Names a cell in messages: ``<file>: line <n>, column '<name>'``."""

    def __init__(self, path: Path, lines: list[int]) -> None:
        self.path, self.lines = path, lines

    def at(self, row: int, column: str) -> str:
        return f"{self.path}: line {self.lines[row]}, column {column!r}"


def _read_records(path: Path) -> tuple[list[str], int, list[list[str]], list[int]]:
    """The header, its line number, the data rows as stripped strings and their line numbers;
    blank lines are skipped, a header or row that is not a comma-separated table of one width
    is refused."""
    if not path.is_file():
        raise DataError(f"{path}: annotation file does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    header, header_line, records, lines = None, 0, [], []
    reader = csv.reader(io.StringIO(text, newline=""))
    previous_end = 0
    try:
        for fields in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if not any(field.strip() for field in fields):
                continue
            if header is None:
                header, header_line = _check_header(fields, path, start), start
            elif len(fields) != len(header):
                raise DataError(
                    f"{path}: line {start}: {len(fields)} fields, expected {len(header)} as in "
                    f"the header (an unknown label is an empty field, not a missing one)"
                )
            else:
                records.append([field.strip() for field in fields])
                lines.append(start)
    except csv.Error as error:
        raise DataError(f"{path}: line {reader.line_num}: not a CSV line ({error})") from None
    if header is None:
        raise DataError(f"{path}: empty file; expected a header line image,person_id,<attributes>")
    if not records:
        raise DataError(f"{path}: no rows after the header")
    return header, header_line, records, lines


def _check_header(fields: list[str], path: Path, line: int) -> list[str]:
    """Column names, refused when the line is separated by another character than the comma,
    or a name is empty or repeated (pandas would rename a repeat to ``name.1``)."""
    names = [field.strip() for field in fields]
    raw = ",".join(fields)
    counts = {sep: raw.count(sep) for sep in OTHER_SEPARATORS}
    found = max(counts, key=counts.get)
    if counts[found] > len(fields) - 1:
        raise DataError(
            f"{path}: line {line} (the header) is separated by {OTHER_SEPARATORS[found]}; "
            "expected a comma-separated file (save it as CSV with ',' as the separator)"
        )
    for position, name in enumerate(names, start=1):
        if not name:
            raise DataError(f"{path}: line {line}: column {position} of the header has no name")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        positions = [str(i) for i, name in enumerate(names, start=1) if name == repeated[0]]
        raise DataError(
            f"{path}: line {line}: column {repeated[0]!r} appears {len(positions)} times "
            f"(columns {', '.join(positions)}); column names must be unique"
        )
    return names


def _integers(cells: pd.Series, where: _Where, column: str) -> np.ndarray:
    """Integer ids; a fraction such as 2.7 is refused, never truncated."""
    values = pd.to_numeric(cells, errors="coerce")
    whole = values.notna() & np.isfinite(values) & (values == np.floor(values))
    if not whole.all():
        row = int((~whole).to_numpy().argmax())
        shown = repr(cells.iloc[row]) if cells.iloc[row] else "an empty cell"
        raise DataError(f"{where.at(row, column)}: {shown}, expected an integer")
    return values.to_numpy().astype(np.int64)


def _labels(cells: pd.Series, where: _Where, column: str) -> np.ndarray:
    """0.0 / 1.0 labels with NaN for an empty cell (unknown); any other value is refused (a
    number equal to 0 or 1, e.g. ``1.0`` as pandas writes a column holding NaN, is accepted)."""
    values = np.where(cells == "1", 1.0, np.where(cells == "0", 0.0, np.nan))
    other = ~cells.isin(("0", "1", ""))
    if other.any():
        numbers = pd.to_numeric(cells[other], errors="coerce")
        allowed = numbers.isin((0, 1))
        if not allowed.all():
            row = int(np.flatnonzero(other.to_numpy())[(~allowed).to_numpy().argmax()])
            raise DataError(
                f"{where.at(row, column)}: {cells.iloc[row]!r}, expected 0, 1 or an empty cell "
                "(unknown)"
            )
        values[other.to_numpy()] = numbers.to_numpy(np.float64)
    return values


def _inside(root: str, name: str, where: _Where, row: int) -> str:
    """``root / name``, normalised but with symbolic links kept: containment is judged on the
    path as written, so a link inside the root may lead anywhere while ``..`` escapes and
    absolute paths are refused."""
    if not name:
        raise DataError(f"{where.at(row, 'image')}: empty image path")
    relative = os.path.normpath(name)
    if os.path.isabs(name) or relative == ".." or relative.startswith(f"..{os.sep}"):
        raise DataError(
            f"{where.at(row, 'image')}: {name!r} points outside the dataset root {root}; "
            "expected a path relative to it"
        )
    if relative == ".":
        raise DataError(f"{where.at(row, 'image')}: {name!r} names the dataset root, not a file")
    return os.path.join(root, relative)


def _real_files(paths: pd.Series) -> pd.Series:
    """Each path with every symbolic link resolved (``os.path.realpath``), resolving each
    folder once: a stat per file instead of one per path component."""
    folders: dict[str, str] = {}
    real = []
    for path in paths:
        if os.path.islink(path):
            real.append(os.path.realpath(path))
            continue
        folder, name = os.path.split(path)
        if folder not in folders:
            folders[folder] = os.path.realpath(folder)
        real.append(os.path.join(folders[folder], name))
    return pd.Series(real, index=paths.index)


def _refuse_duplicate_images(table: pd.DataFrame, where: _Where) -> None:
    """Refuse an image file (after following symbolic links) named by more than one row,
    identical, contradictory or in two splits: a test image must never reach training."""
    files = _real_files(table["path"])
    repeated = files.duplicated(keep=False)
    if not repeated.any():
        return
    first = files[repeated].iloc[0]
    rows = np.flatnonzero(files == first)[:DUPLICATES_SHOWN]
    shown = " and ".join(
        f"line {where.lines[r]} ({table['image'].iloc[r]!r}, {table['split'].iloc[r]}, "
        f"person_id {table['person_id'].iloc[r]})"
        for r in rows
    )
    count = files[repeated].nunique()
    raise DataError(
        f"{where.path}: the same image file {first} is named by {shown}; {count} image "
        f"file(s) appear in more than one row, expected one row per image"
    )
