"""The 32-target schema: encode/decode round trip on every real identity, and bad codings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from attrnet.attributes import (
    ANNOTATION_FIELDS,
    CLASSIFICATION_COLUMNS,
    MARKET_TARGETS,
    AnnotationError,
    decode,
    encode,
)
from attrnet.data.readers import read_market_attribute_mat


def one_identity(**changes: int) -> pd.DataFrame:
    row = {field: 1 for field in ANNOTATION_FIELDS}
    row["age"] = 2
    row.update(changes)
    return pd.DataFrame([row], index=pd.Index([7], name="person_id"))


def test_schema_sizes_and_order() -> None:
    assert len(ANNOTATION_FIELDS) == 27
    assert len(MARKET_TARGETS) == 32
    assert MARKET_TARGETS[:4] == ("young", "teenager", "adult", "old")
    assert CLASSIFICATION_COLUMNS[0] == "id" and len(CLASSIFICATION_COLUMNS) == 30


def test_encode_age_bins_and_multicolor() -> None:
    targets = encode(one_identity(age=3, upred=2, hat=2)).iloc[0]
    assert targets[["young", "teenager", "adult", "old"]].tolist() == [0, 0, 1, 0]
    assert targets["upred"] == 1 and targets["upmulticolor"] == 0
    assert targets["downmulticolor"] == 1  # no lower colour marked
    assert targets["hat"] == 1 and targets["backpack"] == 0


def test_round_trip_on_every_real_identity(mat_file) -> None:
    splits = read_market_attribute_mat(mat_file)
    assert sum(len(s) for s in splits.values()) == 1501
    for fields in splits.values():
        targets = encode(fields)
        decoded = decode(targets.to_numpy(np.float64))
        np.testing.assert_array_equal(
            decoded[list(ANNOTATION_FIELDS)].to_numpy(), fields.to_numpy()
        )


def test_decode_uses_argmax_for_age_and_colour_groups() -> None:
    probabilities = np.full((1, 32), 0.1)
    index = {name: i for i, name in enumerate(MARKET_TARGETS)}
    probabilities[0, index["old"]] = 0.3
    probabilities[0, index["upblue"]] = 0.4
    probabilities[0, index["upmulticolor"]] = 0.35
    probabilities[0, index["gender"]] = 0.7
    row = decode(probabilities).iloc[0]
    assert row["age"] == 4 and row["upblue"] == 2 and row["upmulticolor"] == 1
    assert row["gender"] == 2 and row["downmulticolor"] in (1, 2)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"age": 5}, "column 'age'"),
        ({"hat": 0}, "column 'hat'"),
        ({"upred": 2, "upblue": 2}, "upper colours"),
    ],
)
def test_bad_codings_name_row_and_field(changes: dict[str, int], message: str) -> None:
    with pytest.raises(AnnotationError, match=message) as error:
        encode(one_identity(**changes), "labels.csv")
    assert "labels.csv" in str(error.value) and "row 7" in str(error.value)


def test_decode_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match=r"\(N, 32\)"):
        decode(np.zeros((2, 31)))
