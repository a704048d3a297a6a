"""DataModule and splits on generated data: identity-disjoint, seeded, reloadable; bad images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attrnet.data.dataset import AttributeImageDataset
from attrnet.data.errors import DataError
from attrnet.data.sources import GenericCsvSource, SyntheticSource
from attrnet.data.splits import IdentitySplit, split_identities, study_reid_protocol
from tests.helpers import make_datamodule

TINY = dict(num_train_ids=12, num_test_ids=4, images_per_id=4, height=64, width=32)


def test_split_identities_by_count_fraction_and_seed() -> None:
    ids = np.repeat(np.arange(1, 752), 3)
    study = split_identities(ids, seed=0)
    assert (len(study.train_ids), len(study.val_ids)) == (600, 151)
    assert not set(study.train_ids) & set(study.val_ids)
    assert split_identities(ids, seed=0) == study
    assert split_identities(ids, seed=1).val_ids != study.val_ids
    assert len(split_identities(ids, val_count=10).val_ids) == 10
    with pytest.raises(DataError, match="cannot hold out"):
        split_identities([1, 2], val_count=2)


def test_split_file_round_trip(tmp_path: Path) -> None:
    split = split_identities(range(20), val_fraction=0.25, seed=3)
    split.save(tmp_path / "split.json")
    assert IdentitySplit.load(tmp_path / "split.json") == split
    (tmp_path / "bad.json").write_text('{"train_ids": [1, 2], "val_ids": [2], "seed": 0}')
    with pytest.raises(DataError, match="both train and val"):
        IdentitySplit.load(tmp_path / "bad.json")


def test_study_reid_protocol_one_query_per_identity() -> None:
    pids = np.array([1, 1, 1, 2, 2, 3])
    query, gallery = study_reid_protocol(pids, seed=0)
    assert sorted(pids[query]) == [1, 2]  # identity 3 has a single image: gallery only
    assert sorted(np.concatenate([query, gallery])) == list(range(6))


def test_datamodule_on_synthetic_mat_and_csv_readers_agree(tmp_path: Path) -> None:
    modules = {}
    for reader in ("mat", "csv"):
        dm = make_datamodule(
            SyntheticSource(tmp_path, annotations=reader, **TINY),
            image_size=(32, 16),
            batch_size=4,
            val_count=3,
            split_seed=5,
        )
        dm.prepare_data()
        dm.setup("fit")
        modules[reader] = dm
    mat, csv = modules["mat"], modules["csv"]
    assert mat.attributes == csv.attributes and len(mat.attributes) == 32
    assert mat.split == csv.split and len(mat.split.val_ids) == 3
    columns = ["person_id", *mat.attributes]
    assert mat.train_frame[columns].equals(csv.train_frame[columns])
    batch = next(iter(mat.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 16) and batch["target"].shape == (4, 32)
    assert batch["image"].dtype == torch.uint8  # at the stored size (default: image_size)
    dm_reloaded = make_datamodule(
        SyntheticSource(tmp_path, **TINY),
        image_size=(32, 16),
        split_file=str(mat.save_split(tmp_path)),
    )
    dm_reloaded.setup("fit")
    assert dm_reloaded.split == mat.split


def test_cache_gives_the_same_images_as_decoding(tmp_path: Path) -> None:
    root = SyntheticSource(tmp_path, **TINY).prepare()
    paths = sorted(str(p) for p in (root / "query").iterdir())
    cached = AttributeImageDataset(paths, None, (32, 16), cache=True)
    lazy = AttributeImageDataset(paths, None, (32, 16), cache=False)
    assert cached[1]["image"].dtype == torch.uint8
    assert torch.equal(cached[1]["image"], lazy[1]["image"])
    indices = [3, 0, 2]
    for key, value in cached.__getitems__(indices).items():
        assert torch.equal(value, lazy.__getitems__(indices)[key]), key


def test_truncated_jpeg_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8)).save(
        good
    )
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:300])
    dataset = AttributeImageDataset([str(good), str(broken)], None, (32, 16))
    assert dataset[0]["image"].shape == (3, 32, 16)
    with pytest.raises(DataError, match="broken.jpg: unreadable or truncated image"):
        dataset[1]
    with pytest.raises(DataError, match="broken.jpg: unreadable or truncated image"):
        AttributeImageDataset([str(good), str(broken)], None, (32, 16), cache=True)


def test_generic_csv_source_any_attribute_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["image,person_id,camera_id,split,hat,red,tall"]
    for pid in range(1, 7):
        for shot in range(3):
            name = f"p{pid}_{shot}.png"
            Image.fromarray(rng.integers(0, 255, (20, 10, 3), dtype=np.uint8)).save(tmp_path / name)
            split = "query" if pid == 6 and shot == 0 else ("gallery" if pid == 6 else "train")
            lines.append(f"{name},{pid},{shot + 1},{split},{pid % 2},{shot % 2},1")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    dm = make_datamodule(
        GenericCsvSource(tmp_path / "labels.csv"), image_size=(20, 10), batch_size=2, val_count=1
    )
    dm.setup("fit")
    assert dm.attributes == ["hat", "red", "tall"]
    assert len(dm.train_frame) + len(dm.val_frame) == 15
    assert dm.positive_ratio[2] == 1.0
    assert len(dm.tables.query) == 1 and len(dm.tables.gallery) == 2
    assert next(iter(dm.val_dataloader()))["target"].shape[1] == 3
