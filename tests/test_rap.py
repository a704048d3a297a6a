"""RAP v1: the reader against an independent count of the real annotation sample, partitions,
the validation share, the re-ID partition, identity training and bad files."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from hydra.utils import instantiate

from attrnet.cli import data as data_cli
from attrnet.cli import reid as reid_cli
from attrnet.cli import train as train_cli
from attrnet.data.errors import DataError
from attrnet.data.rap import RapSource
from attrnet.data.splits import NO_ID
from attrnet.training import build_data_and_model
from tests.benchmark_files import write_rap, write_rap_images
from tests.conftest import SHARED_DATA
from tests.helpers import compose_config, make_datamodule

RAP_SAMPLE = SHARED_DATA / "rap_sample" / "RAP_annotation.mat"
TINY = [
    "data.image_size=[32,16]", "data.batch_size=8", "data.eval_batch_size=16",
    "data.num_workers=0", "data.pin_memory=false", "data.cache_images=false",
    "trainer.accelerator=cpu", "optimizer.first_epochs=1", "optimizer.second_epochs=1",
    "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
    "callbacks.validation_figures.num_images=2",
]  # fmt: skip


def _source(root: Path, *overrides: str) -> RapSource:
    """The RAP source as ``conf/data/rap.yaml`` builds it, with ``data.`` overrides."""
    cfg = compose_config("dataset", root / "unused", ["data=rap", f"data.source.root={root}",
                                                      *overrides])  # fmt: skip
    return instantiate(cfg.data.source)


def _raw(path: Path) -> dict:
    """The annotation struct straight from scipy: names, labels, identities, 0-based rows."""
    struct = scipy.io.loadmat(str(path))["RAP_annotation"][0, 0]
    partitions = [
        (entry[0, 0]["train_index"].ravel() - 1, entry[0, 0]["test_index"].ravel() - 1)
        for entry in struct["partion"].ravel()
    ]
    return {
        "images": np.array([str(cell[0][0]) for cell in struct["imagesname"]]),
        "attributes": [str(cell[0][0]) for cell in struct["attribute_eng"]],
        "labels": struct["label"],
        "identities": struct["identity"].ravel().astype(int),
        "partitions": partitions,
        "reid": [struct["reid_partion"][0, 0][f"{s}_identity"].ravel() for s in ("train", "test")],
    }


def _sample_layout(tmp_path: Path) -> tuple[Path, dict]:
    if not RAP_SAMPLE.is_file():
        pytest.skip("../shared/data/rap_sample is absent")
    root = tmp_path / "RAP"
    (root / "RAP_annotation").mkdir(parents=True)
    shutil.copyfile(RAP_SAMPLE, root / "RAP_annotation" / "RAP_annotation.mat")
    raw = _raw(RAP_SAMPLE)
    write_rap_images(root, list(raw["images"]))
    return root, raw


def test_rap_sample_counts_equal_an_independent_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root, raw = _sample_layout(tmp_path)
    labels, ids = raw["labels"], raw["identities"]
    assert labels.shape == (501, 92) and len(raw["partitions"]) == 5
    for number, (train, test) in enumerate(raw["partitions"]):
        tables = _source(
            root, f"data.source.partition={number}", "data.source.attributes=all"
        ).load()
        frame = tables.labelled.set_index("image")
        assert tables.attributes == raw["attributes"] and len(frame) == 501
        pool = frame["split"].isin(["train", "val"])
        assert set(frame.index[pool]) == set(raw["images"][train])
        assert set(frame.index[frame["split"] == "test"]) == set(raw["images"][test])
        for rows, chosen in ((train, pool), (test, frame["split"] == "test")):
            part = frame.loc[chosen, raw["attributes"]]
            assert (part.isna().sum().to_numpy() == (labels[rows] == 2).sum(0)).all()
            assert (part.eq(1).sum().to_numpy() == (labels[rows] == 1).sum(0)).all()
        assert (frame.loc[raw["images"], "person_id"].to_numpy() == ids).all()
        # validation: a tenth of the pool's identities and of its images without identity
        val_ids = set(frame.loc[frame["split"] == "val", "person_id"]) - {NO_ID}
        train_ids = set(frame.loc[frame["split"] == "train", "person_id"]) - {NO_ID}
        pool_ids = set(ids[train]) - {-1}
        assert not val_ids & train_ids and val_ids | train_ids == pool_ids
        assert len(val_ids) == round(0.1 * len(pool_ids))
        anonymous = frame[(frame["split"] == "val") & (frame["person_id"] == NO_ID)]
        assert len(anonymous) == round(0.1 * (ids[train] == -1).sum())
        assert tables.skipped == dict.fromkeys(
            ("labels_without_images", "images_without_labels", "outside_partition"), 0
        )
    # attrnet-data on partition 0: the first 51 attributes and the unknown cells per split
    monkeypatch.setattr(sys, "argv", ["attrnet-data", "data=rap", f"data.source.root={root}",
                                      f"hydra.run.dir={tmp_path / 'summary'}"])  # fmt: skip
    data_cli.main()
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary" / "dataset_summary.json").read_text())
    assert summary["attributes"] == raw["attributes"][:51]
    splits = summary["splits"]
    train, test = raw["partitions"][0]
    assert splits["train"]["images"] + splits["val"]["images"] == len(train)
    assert splits["test"]["images"] == len(test)
    assert printed.startswith("501 images in train/val/test, 51 attributes")
    for name, rows in (("test", test), ("pool", train)):
        counts = (labels[rows, :51] == 2).sum(0)
        expected = {a: int(n) for a, n in zip(raw["attributes"], counts, strict=False) if n}
        parts = [splits[name]] if name == "test" else [splits["train"], splits["val"]]
        found: dict[str, int] = {}
        for part in parts:
            for attribute, n in part.get("unknown", {}).items():
                found[attribute] = found.get(attribute, 0) + n
        assert found == expected and expected  # the sample has unknown labels in both
    total = int((labels[:, :51] == 2).sum())
    assert f"Unknown labels per attribute ({total} cells)" in printed


def test_rap_sample_identities_and_reid_partition(tmp_path: Path) -> None:
    root, raw = _sample_layout(tmp_path)
    ids = raw["identities"]
    tables = _source(root).load()
    assert tables.has_identities and tables.query is None and tables.gallery is None
    frame = tables.labelled
    assert frame["person_id"].nunique() - 1 == len(set(ids) - {-1})
    assert (frame["person_id"] == NO_ID).sum() == (ids == -1).sum()
    assert frame["camera_id"].between(1, 99).all()  # CAMnn_... in every name
    reid = _source(root, "data.source.partition=reid").load()
    train_ids, test_ids = (set(side.tolist()) for side in raw["reid"])
    pool = reid.labelled[reid.labelled["split"] != "test"]
    assert set(pool["person_id"]) == train_ids
    test = reid.labelled[reid.labelled["split"] == "test"]
    assert set(test["person_id"]) == test_ids and len(test) == np.isin(ids, list(test_ids)).sum()
    assert reid.skipped["outside_partition"] == 501 - len(reid.labelled)
    assert set(reid.query["image"]) | set(reid.gallery["image"]) == set(test["image"])
    assert not set(reid.query["image"]) & set(reid.gallery["image"])
    several = test["person_id"].value_counts()
    assert sorted(reid.query["person_id"]) == sorted(several[several > 1].index)


def test_rap_validation_share_is_seeded(tmp_path: Path) -> None:
    root = write_rap(tmp_path)
    first = _source(root, "data.val_fraction=0.25").load().labelled
    again = _source(root, "data.val_fraction=0.25").load().labelled
    other = _source(root, "data.val_fraction=0.25", "data.split_seed=3").load().labelled
    assert (first["split"] == again["split"]).all() and not (first["split"] == other["split"]).all()
    datamodule = make_datamodule(_source(root, "data.val_fraction=0.25"), cache_images=False)
    datamodule.setup("fit")
    saved = datamodule.save_split(tmp_path)
    assert saved.name == "split.csv" and not (tmp_path / "split.json").exists()
    table = np.loadtxt(saved, dtype=str, delimiter=",", skiprows=1)
    assert dict(zip(table[:, 0], table[:, 2], strict=True)) == dict(
        zip(first["path"], first["split"], strict=True)
    )
    with pytest.raises(DataError, match="holds out 0 of the"):
        _source(root, "data.val_fraction=0.001").load()


def test_rap_identity_training_and_reid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity training leaves the images without identity out; validation re-ID and
    attrnet-reid use the identified images; the re-ID partition has query and gallery."""
    root = write_rap(tmp_path / "rap")
    module = make_datamodule(
        _source(root, "data.val_fraction=0.25"), sampler="identity", cache_images=False
    )
    module.setup("fit")
    assert (module.train_frame["person_id"] != NO_ID).all()
    unidentified = (module.val_frame["person_id"] == NO_ID).to_numpy()
    assert unidentified.any() and ((module.val_set.identities == -1).numpy() == unidentified).all()
    random_batches = ["data=rap", f"data.source.root={root}", "objective=apr",
                      "data.sampler=random", "data.val_fraction=0.25", *TINY]  # fmt: skip
    with pytest.raises(DataError, match="training image.s. have no person id"):
        build_data_and_model(compose_config("train", tmp_path / "refused", random_batches))

    run = tmp_path / "run"
    overrides = ["data=rap", f"data.source.root={root}", "data.source.partition=reid",
                 "data.val_fraction=0.25", "objective=apr", "reid=default", *TINY]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["attrnet-train", *overrides, f"hydra.run.dir={run}"])
    train_cli.main()
    reid = json.loads((run / "reid_metrics.json").read_text())
    assert reid["mode"] == "val" and reid["results"]["euclidean"]["num_valid_queries"] >= 1
    checkpoint = json.loads((run / "metrics.json").read_text())["checkpoint"]
    market = ["data=rap", f"data.source.root={root}", "data.source.partition=reid",
              "data.val_fraction=0.25", f"ckpt_path={checkpoint}", "mode=market1501",
              "features=identity", "device=cpu", "num_ranked_lists=1"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["attrnet-reid", *market, f"hydra.run.dir={tmp_path}/r"])
    reid_cli.main()
    result = json.loads((tmp_path / "r" / "reid_metrics.json").read_text())["results"]
    counts = result["euclidean"]
    assert counts["num_valid_queries"] + counts["num_skipped"] == 3  # test identities 6-8


def _edit(root: Path, change) -> None:
    """Rewrite the annotation file with ``change`` applied to its struct's fields (a dict)."""
    path = root / "RAP_annotation" / "RAP_annotation.mat"
    struct = scipy.io.loadmat(str(path))["RAP_annotation"][0, 0]
    fields = {name: struct[name] for name in struct.dtype.names}
    change(fields)
    scipy.io.savemat(str(path), {"RAP_annotation": fields})


def test_rap_bad_files_are_named(tmp_path: Path) -> None:
    root = write_rap(tmp_path / "rap")
    name = _raw(root / "RAP_annotation" / "RAP_annotation.mat")["images"][2]
    (root / "RAP_dataset" / name).unlink()
    (root / "RAP_dataset" / "stray.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="1 annotated image.s. missing and 1 unannotated"):
        tables = _source(root).load()
    assert tables.skipped["labels_without_images"] == 1 and name not in set(tables.labelled.image)
    with pytest.raises(ValueError, match="has partitions 0-4"):
        _source(root, "data.source.partition=5").load()
    with pytest.raises(DataError, match=r"\['nope'\] not RAP attribute names"):
        _source(root, "data.source.attributes=[attr00,nope]").load()
    with pytest.raises(ValueError, match="must be 0-4 or 'reid'"):
        RapSource(root, "first", "rap51", 0.1, 0, "RAP_annotation/RAP_annotation.mat", "RAP_data")

    _edit(root, lambda f: f["label"].__setitem__((2, 5), 3))
    with pytest.raises(DataError, match=rf"label row 3 \({name}\), attribute 'attr05': 3, "
                       r"expected 0, 1 or 2 \(unknown\)"):  # fmt: skip
        _source(root).load()
    _edit(root, lambda f: f["label"].__setitem__((2, 5), 2))
    _edit(root, lambda f: f["partion"][1, 0][0, 0]["test_index"].__setitem__((0, 0), 49))
    with pytest.raises(DataError, match=r"partion 1\] test_index: index 49 outside 1..48"):
        _source(root).load()
    _edit(root, lambda f: f.pop("identity"))
    with pytest.raises(DataError, match=r"missing field\(s\) \['identity'\]"):
        _source(root).load()
    shutil.rmtree(root / "RAP_annotation")
    with pytest.raises(DataError, match="RAP annotation file does not exist"):
        _source(root).load()
