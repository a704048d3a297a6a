"""The Market-1501 attribute schema: 27 annotated fields (1/2 coding) <-> 32 binary targets.

Annotations code every field as 1 = no / 2 = yes, except ``age`` (1..4). Training uses 32
binary targets: ``age`` becomes four one-hot bins and each colour group gains a
``multicolor`` target that is positive where no colour of the group is marked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from attrnet.errors import DataError

AGE_FIELD = "age"
AGE_BINS = ("young", "teenager", "adult", "old")
BINARY_FIELDS = ("backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender")
UPPER_COLOURS = (
    "upblack",
    "upwhite",
    "upred",
    "uppurple",
    "upyellow",
    "upgray",
    "upblue",
    "upgreen",
)
LOWER_COLOURS = (
    "downblack",
    "downwhite",
    "downpink",
    "downpurple",
    "downyellow",
    "downgray",
    "downblue",
    "downgreen",
    "downbrown",
)
UPPER_MULTICOLOR = "upmulticolor"
LOWER_MULTICOLOR = "downmulticolor"

#: The 27 annotated fields in the order of the study's ``annotations_train.csv`` (after ``id``).
ANNOTATION_FIELDS: tuple[str, ...] = (AGE_FIELD, *BINARY_FIELDS, *UPPER_COLOURS, *LOWER_COLOURS)

#: The 32 binary training targets, in model-output order.
MARKET_TARGETS: tuple[str, ...] = (
    *AGE_BINS,
    *BINARY_FIELDS,
    *UPPER_COLOURS,
    UPPER_MULTICOLOR,
    *LOWER_COLOURS,
    LOWER_MULTICOLOR,
)

#: Header of the study's ``classification_test.csv`` deliverable.
CLASSIFICATION_COLUMNS: tuple[str, ...] = (
    "id",
    AGE_FIELD,
    *BINARY_FIELDS,
    *UPPER_COLOURS,
    UPPER_MULTICOLOR,
    *LOWER_COLOURS,
    LOWER_MULTICOLOR,
)

#: Groups whose targets are mutually exclusive: exactly one is positive per identity.
EXCLUSIVE_GROUPS: dict[str, tuple[str, ...]] = {
    AGE_FIELD: AGE_BINS,
    "upcolour": (*UPPER_COLOURS, UPPER_MULTICOLOR),
    "downcolour": (*LOWER_COLOURS, LOWER_MULTICOLOR),
}


class AnnotationError(DataError):
    """An annotation table breaks the schema; the message names the row/field and expectation."""


def plain_value(value: object) -> object:
    """A numpy scalar as its Python value, so messages read ``7`` rather than ``np.int64(7)``."""
    return value.item() if isinstance(value, np.generic) else value


def validate_annotations(fields: pd.DataFrame, source: str) -> None:
    """Check that ``fields`` holds the 27 annotated fields in 1/2 coding (age 1..4).

    ``source`` names the file in error messages; the frame's index labels the rows.
    """
    missing = [f for f in ANNOTATION_FIELDS if f not in fields.columns]
    if missing:
        raise AnnotationError(f"{source}: missing attribute column(s) {missing}")
    for field in ANNOTATION_FIELDS:
        allowed = (1, 2, 3, 4) if field == AGE_FIELD else (1, 2)
        column = pd.to_numeric(fields[field], errors="coerce")
        bad = ~column.isin(allowed)
        if bad.any():
            row = plain_value(fields.index[bad.to_numpy().argmax()])
            value = plain_value(fields[field][row])
            raise AnnotationError(
                f"{source}: row {row}, column {field!r}: value {value!r} is outside the "
                f"coding, expected one of {list(allowed)} ({int(bad.sum())} bad value(s) in it)"
            )
    for group, colours in (("upper", UPPER_COLOURS), ("lower", LOWER_COLOURS)):
        marked = (fields[list(colours)].astype(int) == 2).sum(axis=1)
        if (marked > 1).any():
            row = plain_value(fields.index[(marked > 1).to_numpy().argmax()])
            raise AnnotationError(
                f"{source}: row {row}: {int(marked[row])} {group} colours marked 2, "
                "expected at most one"
            )


def encode(fields: pd.DataFrame, source: str = "annotations") -> pd.DataFrame:
    """Turn 27 annotated fields (1/2 coding) into the 32 binary targets (0/1, uint8).

    The index of ``fields`` (e.g. person ids) is kept.
    """
    validate_annotations(fields, source)
    values = fields[list(ANNOTATION_FIELDS)].astype(int)
    targets = pd.DataFrame(index=fields.index)
    for bin_index, name in enumerate(AGE_BINS, start=1):
        targets[name] = values[AGE_FIELD] == bin_index
    for name in BINARY_FIELDS:
        targets[name] = values[name] == 2
    for colours, multicolor in (
        (UPPER_COLOURS, UPPER_MULTICOLOR),
        (LOWER_COLOURS, LOWER_MULTICOLOR),
    ):
        for name in colours:
            targets[name] = values[name] == 2
        targets[multicolor] = ~(values[list(colours)] == 2).any(axis=1)
    return targets[list(MARKET_TARGETS)].astype(np.uint8)


def decode(probabilities: np.ndarray, threshold: float = 0.5) -> pd.DataFrame:
    """Turn (N, 32) probabilities into the 1/2 coding of ``CLASSIFICATION_COLUMNS`` (without id).

    Age is the argmax of its four bins; each colour group (colours + multicolor) is decoded
    as its argmax, so exactly one member is 2; other attributes are 2 where p >= threshold.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(MARKET_TARGETS):
        raise ValueError(
            f"expected probabilities of shape (N, {len(MARKET_TARGETS)}), got {probabilities.shape}"
        )
    index = {name: i for i, name in enumerate(MARKET_TARGETS)}
    out: dict[str, np.ndarray] = {}
    age_columns = [index[name] for name in AGE_BINS]
    out[AGE_FIELD] = probabilities[:, age_columns].argmax(axis=1) + 1
    for name in BINARY_FIELDS:
        out[name] = np.where(probabilities[:, index[name]] >= threshold, 2, 1)
    for group in ("upcolour", "downcolour"):
        members = EXCLUSIVE_GROUPS[group]
        winner = probabilities[:, [index[m] for m in members]].argmax(axis=1)
        for position, name in enumerate(members):
            out[name] = np.where(winner == position, 2, 1)
    return pd.DataFrame({name: out[name] for name in CLASSIFICATION_COLUMNS[1:]}).astype(int)
