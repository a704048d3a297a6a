"""Readers on real and on malformed files: errors name the file, row or field, and expectation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from attrnet.attributes import ANNOTATION_FIELDS
from attrnet.data.errors import DataError
from attrnet.data.generic_csv import read_generic_csv
from attrnet.data.readers import (
    COURSE_COLUMNS,
    read_course_annotations,
    read_market_attribute_mat,
)


def test_mat_reader_real_file_both_splits(mat_file: Path) -> None:
    splits = read_market_attribute_mat(mat_file)
    train, test = splits["train"], splits["test"]
    assert len(train) == 751 and len(test) == 750
    assert list(train.columns) == list(ANNOTATION_FIELDS)
    assert train["age"].value_counts().sort_index().tolist() == [14, 569, 160, 8]
    assert int((train["downpurple"] == 2).sum()) == 2 and int((test["downpurple"] == 2).sum()) == 0
    assert train.index[0] == 2 and not set(train.index) & set(test.index)


def _write_mat(path: Path, fields: dict[str, np.ndarray], ids: list[str]) -> None:
    def split() -> dict[str, object]:
        data: dict[str, object] = {k: v.reshape(1, -1).astype(np.uint8) for k, v in fields.items()}
        cells = np.empty((1, len(ids)), dtype=object)
        for i, pid in enumerate(ids):
            cells[0, i] = np.array([pid])
        data["image_index"] = cells
        return data

    scipy.io.savemat(path, {"market_attribute": {"train": split(), "test": split()}})


def _valid_fields(n: int) -> dict[str, np.ndarray]:
    fields = {f: np.ones(n, dtype=np.uint8) for f in ANNOTATION_FIELDS}
    fields["age"] = np.full(n, 2, dtype=np.uint8)
    return fields


def test_mat_reader_written_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.mat"
    _write_mat(path, _valid_fields(3), ["0001", "0002", "0005"])
    assert read_market_attribute_mat(path)["test"].index.tolist() == [1, 2, 5]


def test_mat_reader_missing_field(tmp_path: Path) -> None:
    path = tmp_path / "a.mat"
    fields = _valid_fields(2)
    del fields["hat"]
    _write_mat(path, fields, ["0001", "0002"])
    with pytest.raises(DataError, match=r"a\.mat \[train\]: missing field\(s\) \['hat'\]"):
        read_market_attribute_mat(path)


def test_mat_reader_duplicate_identity_and_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "dup.mat"
    _write_mat(path, _valid_fields(2), ["0001", "0001"])
    with pytest.raises(DataError, match="duplicate identity 1"):
        read_market_attribute_mat(path)
    fields = _valid_fields(2)
    fields["gender"][1] = 3
    _write_mat(path, fields, ["0001", "0002"])
    with pytest.raises(DataError, match=r"row 2, column 'gender': value 3 is outside the coding"):
        read_market_attribute_mat(path)


def test_mat_reader_not_a_mat_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.mat"
    path.write_bytes(b"this is not matlab")
    with pytest.raises(DataError, match="broken.mat: not a readable MATLAB file"):
        read_market_attribute_mat(path)
    with pytest.raises(DataError, match="does not exist"):
        read_market_attribute_mat(tmp_path / "absent.mat")


def _course_frame(n: int = 3) -> pd.DataFrame:
    frame = pd.DataFrame({c: [1] * n for c in COURSE_COLUMNS})
    frame["id"] = [2, 7, 10][:n]
    frame["age"] = 2
    return frame


def test_course_reader_valid_and_missing_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "annotations_train.csv"
    _course_frame().to_csv(path, index=False)
    assert read_course_annotations(path).index.tolist() == [2, 7, 10]
    _course_frame().drop(columns=["hat"]).assign(colour=1).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"missing \['hat'\], extra \['colour'\]"):
        read_course_annotations(path)


def test_course_reader_bad_value_names_csv_line(tmp_path: Path) -> None:
    path = tmp_path / "annotations_train.csv"
    frame = _course_frame()
    frame.loc[1, "backpack"] = 7
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 3, column 'backpack': value 7"):
        read_course_annotations(path)


def test_course_reader_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "annotations_train.csv"
    frame = _course_frame()
    frame.loc[2, "id"] = 2
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="duplicate identity 2"):
        read_course_annotations(path)


def test_generic_csv_reader(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    path = tmp_path / "labels.csv"
    path.write_text("image,person_id,camera_id,hat,red\nimgs/a.jpg,1,2,0,1\nimgs/b.jpg,1,3,1,0\n")
    frame, attributes = read_generic_csv(path, tmp_path)
    assert attributes == ["hat", "red"]
    assert frame["path"].tolist() == [str(tmp_path / "imgs/a.jpg"), str(tmp_path / "imgs/b.jpg")]
    assert frame["split"].tolist() == ["train", "train"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("image,person_id\na.jpg,1\n", "no attribute columns"),
        ("person_id,hat\n1,0\n", "line 1: no 'image' column"),
        ("image,person_id,hat\na.jpg,1,2\n", r"line 2, column 'hat': '2', expected 0, 1 or an"),
        (
            "image,person_id,hat\na.jpg,x,1\n",
            r"line 2, column 'person_id': 'x', expected an integer",
        ),
        ("image,person_id,hat\n../../etc/passwd,1,1\n", "points outside the dataset root"),
        ("image,person_id,hat\n/etc/passwd,1,1\n", "points outside the dataset root"),
    ],
)
def test_generic_csv_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as error:
        read_generic_csv(path, tmp_path)
    assert "labels.csv" in str(error.value)
