"""PETA and PA-100K readers, generic CSV split semantics, image partitions."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from attrnet.cli import data as data_cli
from attrnet.data.errors import DataError
from attrnet.data.pa100k import Pa100kSource, read_pa100k_annotations
from attrnet.data.peta import PETA_35, PetaSource, peta_split_sizes, scan_peta
from attrnet.data.sources import GenericCsvSource
from attrnet.data.splits import partition_images
from tests.benchmark_files import PA100K_ATTRIBUTES, write_generic_csv, write_pa100k, write_peta
from tests.conftest import SHARED_DATA
from tests.helpers import make_datamodule

PETA_SAMPLE = SHARED_DATA / "peta_sample"


def _independent_peta_count(root: Path) -> tuple[dict[str, int], Counter, int, int]:
    """Images per subset, positives per label, unmatched images and unmatched label lines,
    counted straight from the files with plain string operations."""
    images, positives, lonely_images, lonely_lines = {}, Counter(), 0, 0
    for subset in sorted(os.listdir(root)):
        archive = root / subset / "archive"
        if not (archive / "Label.txt").is_file():
            continue
        lines = [line.split() for line in (archive / "Label.txt").read_text().splitlines()]
        labels = {fields[0].split(".")[0]: fields[1:] for fields in lines if fields}
        used = set()
        images[subset] = 0
        for name in os.listdir(archive):
            if name == "Label.txt":
                continue
            key = name.split("_")[0].split(".")[0]
            if key not in labels:
                lonely_images += 1
                continue
            used.add(key)
            images[subset] += 1
            positives.update(set(labels[key]))  # a line may repeat a label
        lonely_lines += len(labels) - len(used)
    return images, positives, lonely_images, lonely_lines


def _check_against_independent_count(root: Path) -> pd.DataFrame:
    images, positives, lonely_images, lonely_lines = _independent_peta_count(root)
    tables = PetaSource(root, attributes="all").load()
    frame = tables.labelled
    assert frame["subset"].value_counts().to_dict() == images
    assert tables.skipped == {
        "images_without_labels": lonely_images,
        "labels_without_images": lonely_lines,
    }
    assert tables.attributes == sorted(positives)
    assert frame[tables.attributes].sum().to_dict() == dict(positives)
    return frame


def test_peta_sample_counts_equal_an_independent_count_of_label_txt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not PETA_SAMPLE.is_dir():
        pytest.skip("../shared/data/peta_sample is absent")
    frame = _check_against_independent_count(PETA_SAMPLE)
    # attrnet-data on the sample: the 35 evaluation attributes, split sizes in the 50/10/40
    # proportions of 9,500 / 1,900 / 7,600, positives adding up to the independent count
    overrides = ["data=peta", f"data.source.root={PETA_SAMPLE}", f"hydra.run.dir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", ["attrnet-data", *overrides])
    data_cli.main()
    summary = json.loads((tmp_path / "dataset_summary.json").read_text())
    assert summary["attributes"] == list(PETA_35)
    assert summary["skipped"] == {"images_without_labels": 0, "labels_without_images": 0}
    splits = summary["splits"]
    assert [splits[s]["images"] for s in ("train", "val", "test")] == [924, 185, 738]
    _, positives, _, _ = _independent_peta_count(PETA_SAMPLE)
    for name in PETA_35:
        assert sum(splits[s]["positives"][name] for s in splits) == positives[name]
    # the sample's README: 477 + 1,220 + 150 images; 120 + 72 + 150 ids, all with images
    sizes = {"i-LID": 477, "CAVIAR4REID": 1220, "CUHK": 150}
    assert frame["subset"].value_counts().to_dict() == sizes
    assert frame.groupby("subset")["person_id"].nunique().to_dict() == {
        "i-LID": 120, "CAVIAR4REID": 72, "CUHK": 150
    }  # fmt: skip


def test_peta_reader_rule_on_written_layout(tmp_path: Path) -> None:
    """Ids of any length, ids that are file names, .bmp/.jpeg/.png; unmatched files counted."""
    root = write_peta(tmp_path)
    frame = _check_against_independent_count(root)
    assert len(frame) == 12 and frame["person_id"].nunique() == 8
    ids = frame.set_index("image")["person_id"]
    assert ids["GRID/1_a.bmp"] == ids["GRID/1_c.bmp"] != ids["GRID/0007.bmp"]
    assert ids["GRID/0007.bmp"] == ids["GRID/0007_2.bmp"]
    scanned, skipped = scan_peta(root)
    assert skipped == {"images_without_labels": 1, "labels_without_images": 2}
    evaluation = PetaSource(root).load()
    assert evaluation.attributes == list(PETA_35) and len(PETA_35) == 35
    row = evaluation.labelled.set_index("image").loc["GRID/230_x.jpeg"]
    assert row["carryingBackpack"] == 1 and row["personalMale"] == 0 and row["hairLong"] == 1
    chosen = PetaSource(root, attributes=["hairLong", "carryingBackpack"]).load()  # a list
    assert chosen.attributes == ["hairLong", "carryingBackpack"]
    assert chosen.labelled.set_index("image").loc["GRID/230_x.jpeg", "carryingBackpack"] == 1
    (root / "GRID" / "archive" / "Label.txt").write_text("1 a\n2 b\n1 c\n")
    with pytest.raises(DataError, match=r"Label.txt: line 3: id '1' labelled twice"):
        scan_peta(root)
    with pytest.raises(DataError, match="no PETA subset"):
        scan_peta(tmp_path / "GRID")


def test_partitions_random_and_identity_disjoint() -> None:
    assert peta_split_sizes(19000) == (9500, 1900, 7600)
    labels = partition_images(19000, (9500, 1900, 7600), seed=3)
    assert Counter(labels) == {"train": 9500, "val": 1900, "test": 7600}
    assert (partition_images(19000, (9500, 1900, 7600), seed=3) == labels).all()
    assert not (partition_images(19000, (9500, 1900, 7600), seed=4) == labels).all()
    groups = np.random.default_rng(0).integers(0, 8700, 19000)
    disjoint = partition_images(19000, (9500, 1900, 7600), seed=3, groups=groups)
    per_group = pd.Series(disjoint).groupby(groups).nunique()
    assert per_group.max() == 1
    counts = Counter(disjoint)
    assert abs(counts["train"] - 9500) < 20 and abs(counts["val"] - 1900) < 20
    with pytest.raises(DataError, match="add up to"):
        partition_images(10, (5, 2, 2), seed=0)


def test_pa100k_reader_official_split_and_no_identities(tmp_path: Path) -> None:
    root = write_pa100k(tmp_path)
    attributes, splits = read_pa100k_annotations(root / "annotation.mat")
    assert attributes == PA100K_ATTRIBUTES
    assert {k: len(v) for k, v in splits.items()} == {"train": 12, "val": 4, "test": 4}
    assert splits["train"].iloc[0][attributes].tolist() == [1] * len(attributes)
    with pytest.warns(UserWarning, match="1 annotated image"):
        tables = Pa100kSource(root).load()
    assert tables.skipped == {"labels_without_images": 1, "images_without_labels": 0}
    assert not tables.has_identities
    module = make_datamodule(Pa100kSource(root), image_size=(32, 16), sampler="identity")
    with pytest.raises(DataError, match="needs person identities"):
        module.setup("fit")
    module = make_datamodule(Pa100kSource(root), image_size=(32, 16), cache_images=False)
    module.setup("fit")
    assert (len(module.train_frame), len(module.val_frame), len(module.test_frame)) == (12, 4, 3)
    os.rename(root / "data", root / "elsewhere")
    with pytest.raises(DataError, match="no PA-100K image folder"):
        Pa100kSource(root).load()


def test_generic_csv_split_values_and_identity_overlap(tmp_path: Path) -> None:
    csv = write_generic_csv(tmp_path)
    module = make_datamodule(GenericCsvSource(csv), image_size=(32, 16), cache_images=False)
    module.setup("fit")
    table = pd.read_csv(csv)
    assert module.split is None  # explicit val rows replace the random identity split
    for name, frame in (("train", module.train_frame), ("val", module.val_frame),
                        ("test", module.test_frame)):  # fmt: skip
        assert sorted(frame["image"]) == sorted(table.loc[table["split"] == name, "image"])
    assert len(module.tables.query) == 3 and len(module.tables.gallery) == 6

    table.loc[4, "split"] = "tset"
    table.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"labels.csv: line 6, column 'split': 'tset' is not a "
                       r"split; expected one of train, val, test, query, gallery"):  # fmt: skip
        GenericCsvSource(csv).load()
    table.loc[4, "split"] = "train"
    table.loc[table["person_id"] == 9, "split"] = ["test", "val", "test"]
    table.to_csv(csv, index=False)
    with pytest.raises(DataError, match="person_id 9 appears in test and val"):
        GenericCsvSource(csv).load()
    # no val rows: the pool is split by identity, and test rows stay out of it
    table.loc[table["person_id"] == 9, "split"] = "test"
    table["split"] = table["split"].replace({"val": "train"})
    table.to_csv(csv, index=False)
    module = make_datamodule(
        GenericCsvSource(csv), image_size=(32, 16), cache_images=False, val_count=2
    )
    module.setup("fit")
    assert len(module.split.val_ids) == 2 and len(module.test_frame) == 6
    assert not set(module.test_frame["image"]) & set(module.train_frame["image"])
