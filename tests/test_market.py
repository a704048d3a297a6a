"""Market-1501 name parsing and folder scans on the real mini set and on bad folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from attrnet.data.errors import DataError
from attrnet.data.labels import attach_identity_labels
from attrnet.data.market import parse_market_name, scan_anonymous_folder, scan_market_folder
from attrnet.data.readers import read_market_attribute_mat
from attrnet.data.sources import MarketSource


def test_parse_names() -> None:
    name = parse_market_name("0002_c1s1_000451_03.jpg")
    assert (name.person_id, name.camera_id, name.sequence, name.frame, name.box) == (
        2,
        1,
        1,
        451,
        3,
    )
    assert parse_market_name("-1_c3s2_012345_00.jpg").person_id == -1
    assert parse_market_name("0000_c6s4_000001_01.jpg").person_id == 0
    with pytest.raises(DataError, match="not a Market-1501 image name"):
        parse_market_name("001261.jpg")
    with pytest.raises(DataError, match="camera 9 outside 1..6"):
        parse_market_name("0002_c9s1_000451_03.jpg")


def test_scan_real_mini_market(mini_market: Path) -> None:
    train = scan_market_folder(mini_market / "bounding_box_train", "train")
    assert len(train) == 32 and train["person_id"].nunique() == 16
    assert sorted(train["camera_id"].unique()) == [1, 2, 3, 4, 5, 6]
    query = scan_market_folder(mini_market / "query", "query")
    gallery = scan_market_folder(mini_market / "bounding_box_test", "gallery")
    assert len(query) == 32 and len(gallery) == 32
    assert not set(train["person_id"]) & set(query["person_id"])


def test_real_mini_market_labels_join(mini_market: Path, mat_file: Path) -> None:
    labels = read_market_attribute_mat(mat_file)
    train = scan_market_folder(mini_market / "bounding_box_train", "train")
    with pytest.warns(UserWarning, match="735 of 751 labelled identities have no images"):
        joined = attach_identity_labels(train, labels["train"], str(mat_file))
    assert (
        len(joined) == 32 and joined[["young", "teenager", "adult", "old"]].sum(axis=1).eq(1).all()
    )


def test_real_market_source(tmp_path: Path, mini_market: Path, mat_file: Path) -> None:
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        (tmp_path / folder).symlink_to(mini_market / folder)
    source = MarketSource(tmp_path, annotations=str(mat_file))
    with pytest.warns(UserWarning):
        tables = source.load()
    assert len(tables.attributes) == 32 and len(tables.labelled) == 32
    assert len(tables.query) == 32 and len(tables.gallery) == 32


def test_images_of_unlabelled_identity_is_an_error(mini_market: Path, mat_file: Path) -> None:
    labels = read_market_attribute_mat(mat_file)["test"]  # the train ids are not in test
    train = scan_market_folder(mini_market / "bounding_box_train", "train")
    with pytest.raises(DataError, match="has no labels"):
        attach_identity_labels(train, labels, str(mat_file))


def test_empty_missing_and_misnamed_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        scan_market_folder(tmp_path / "absent", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        scan_market_folder(tmp_path / "empty", "train")
    (tmp_path / "bad").mkdir()
    Image.new("RGB", (8, 16)).save(tmp_path / "bad" / "person.jpg")
    with pytest.raises(DataError, match="bad/person.jpg: not a Market-1501 image name"):
        scan_market_folder(tmp_path / "bad", "train")
    assert scan_anonymous_folder(tmp_path / "bad", "test")["image"].tolist() == ["person.jpg"]
