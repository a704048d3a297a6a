"""The embedded synthetic Market-1501: layout, annotations, statistics, determinism, cache."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from attrnet.attributes import (
    ANNOTATION_FIELDS,
    LOWER_COLOURS,
    MARKET_TARGETS,
    UPPER_COLOURS,
    encode,
)
from attrnet.synthetic import (
    SyntheticParams,
    default_cache_dir,
    ensure_synthetic_market,
    generate_synthetic_market,
    save_sample_grid,
)
from attrnet.synthetic.camera import Shot, make_camera
from attrnet.synthetic.identities import (
    REAL_TRAIN_COUNTS,
    REAL_TRAIN_POSITIVES,
    REAL_TRAIN_SIZE,
    network_counts,
    sample_identity_attributes,
)
from attrnet.synthetic.look import make_look
from attrnet.synthetic.market import MANIFEST_NAME, REAL_TRAIN_FIELD_ORDER
from attrnet.synthetic.render import render_person

REAL_MAT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "market1501_attribute"
    / "market_attribute.mat"
)
NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
FOLDERS = ("bounding_box_train", "bounding_box_test", "query")
SMALL = dict(num_train_ids=8, num_test_ids=6, images_per_id=6, num_junk=3, num_distractors=4)
TINY = dict(
    num_train_ids=3,
    num_test_ids=2,
    images_per_id=4,
    height=64,
    width=32,
    num_junk=1,
    num_distractors=1,
)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_market(tmp_path_factory.mktemp("synthetic") / "market", **SMALL)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _images(root: Path) -> dict[str, list[tuple[int, int]]]:
    """(person id, camera) of every image per folder; names must parse."""
    found: dict[str, list[tuple[int, int]]] = {}
    for folder in FOLDERS:
        found[folder] = []
        for path in sorted((root / folder).iterdir()):
            match = NAME.match(path.name)
            assert match, f"{folder}/{path.name} is not a Market-1501 name"
            camera, sequence = int(match.group(2)), int(match.group(3))
            assert 1 <= camera <= 6 and 1 <= sequence <= 6, path.name
            found[folder].append((int(match.group(1)), camera))
    return found


def _mat_split(root: Path, split: str) -> pd.DataFrame:
    struct = scipy.io.loadmat(root / "market_attribute.mat")["market_attribute"][split][0, 0]
    index = [str(cell[0]) for cell in struct["image_index"][0, 0][0]]
    return pd.DataFrame(
        {f: struct[f][0, 0][0] for f in ANNOTATION_FIELDS}, index=[int(i) for i in index]
    )


def test_same_seed_gives_identical_bytes(small_set: Path, tmp_path: Path) -> None:
    again = generate_synthetic_market(tmp_path / "again", **SMALL)
    assert _hashes(again) == _hashes(small_set)


def test_parallel_rendering_gives_identical_bytes(small_set: Path, tmp_path: Path) -> None:
    parallel = generate_synthetic_market(tmp_path / "parallel", workers=2, **SMALL)
    assert _hashes(parallel) == _hashes(small_set)


def test_different_seed_differs(small_set: Path, tmp_path: Path) -> None:
    other = _hashes(generate_synthetic_market(tmp_path / "other", seed=1, **SMALL))
    reference = _hashes(small_set)
    assert other["market_attribute.mat"] != reference["market_attribute.mat"]
    assert set(other) != set(reference)


def test_layout_names_and_protocol(small_set: Path) -> None:
    images = _images(small_set)
    train_ids = {pid for pid, _ in images["bounding_box_train"]}
    test_ids = {pid for pid, _ in images["bounding_box_test"] + images["query"] if pid > 0}
    assert len(train_ids) == SMALL["num_train_ids"] and len(test_ids) == SMALL["num_test_ids"]
    assert not train_ids & test_ids
    assert len(images["bounding_box_train"]) == SMALL["num_train_ids"] * SMALL["images_per_id"]
    gallery = images["bounding_box_test"]
    assert sum(pid == -1 for pid, _ in gallery) == SMALL["num_junk"]
    assert sum(pid == 0 for pid, _ in gallery) == SMALL["num_distractors"]
    cameras = defaultdict(set)
    for pid, camera in gallery:
        cameras[pid].add(camera)
    queries_per_id = defaultdict(int)
    for pid, camera in images["query"]:
        queries_per_id[pid] += 1
        assert cameras[pid] - {camera}, f"query {pid} has no gallery image from another camera"
    assert set(queries_per_id) == test_ids and set(queries_per_id.values()) == {2}


def test_mat_has_the_real_structure(small_set: Path) -> None:
    struct = scipy.io.loadmat(small_set / "market_attribute.mat")["market_attribute"]
    assert struct.dtype.names == ("test", "train")
    train = struct["train"][0, 0]
    assert train.dtype.names == (*REAL_TRAIN_FIELD_ORDER, "image_index")
    assert struct["test"][0, 0].dtype.names == (*ANNOTATION_FIELDS, "image_index")
    age = train["age"][0, 0]
    assert age.dtype == np.uint8 and age.shape == (1, SMALL["num_train_ids"])
    assert all(re.fullmatch(r"\d{4}", str(c[0])) for c in train["image_index"][0, 0][0])
    images = _images(small_set)
    for split, count, folder in (
        ("train", SMALL["num_train_ids"], "bounding_box_train"),
        ("test", SMALL["num_test_ids"], "query"),
    ):
        fields = _mat_split(small_set, split)
        assert len(fields) == count
        assert set(fields.index) == {pid for pid, _ in images[folder]}
        assert fields["age"].between(1, 4).all()
        assert fields.drop(columns="age").isin([1, 2]).all().all()
        for colours in (UPPER_COLOURS, LOWER_COLOURS):
            assert ((fields[list(colours)] == 2).sum(axis=1) <= 1).all()


def test_course_csv_matches_the_mat(small_set: Path) -> None:
    text = (small_set / "annotations_train.csv").read_text()
    assert text.splitlines()[0] == (
        "id,age,backpack,bag,handbag,clothes,down,up,hair,hat,gender,upblack,upwhite,upred,"
        "uppurple,upyellow,upgray,upblue,upgreen,downblack,downwhite,downpink,downpurple,"
        "downyellow,downgray,downblue,downgreen,downbrown"
    )
    table = pd.read_csv(small_set / "annotations_train.csv").set_index("id")
    mat = _mat_split(small_set, "train")
    pd.testing.assert_frame_equal(
        table.sort_index(), mat.sort_index().astype(table.dtypes), check_names=False
    )


@pytest.mark.parametrize(("count", "tolerance"), [(200, 0.03), (3000, 0.01)])
def test_sampled_label_statistics_follow_the_real_train_split(count: int, tolerance: float) -> None:
    """Per-target rates within a few points of the real train split, even for 200 ids."""
    real = pd.Series(REAL_TRAIN_POSITIVES)[list(MARKET_TARGETS)] / REAL_TRAIN_SIZE
    for seed in range(3):
        targets = encode(sample_identity_attributes(count, np.random.default_rng(seed)))
        assert list(targets.columns) == list(MARKET_TARGETS)
        gap = (targets.mean() - real).abs()
        assert gap.max() <= tolerance, gap.sort_values().tail(3).to_dict()


def test_sampled_attributes_keep_the_real_co_occurrences() -> None:
    targets = encode(sample_identity_attributes(3000, np.random.default_rng(0)))
    assert np.corrcoef(targets["hair"], targets["gender"])[0, 1] > 0.7
    assert not (targets["clothes"].eq(0) & targets["gender"].eq(0)).any()
    assert not (targets[["backpack", "bag", "handbag"]].sum(axis=1) > 1).any()
    assert np.corrcoef(targets["adult"], targets["down"])[0, 1] < -0.25


def test_baked_figures_equal_the_real_file() -> None:
    if not REAL_MAT.is_file():
        pytest.skip(f"{REAL_MAT} is absent")
    struct = scipy.io.loadmat(REAL_MAT)["market_attribute"]["train"][0, 0]
    real = pd.DataFrame({f: struct[f][0, 0][0] for f in ANNOTATION_FIELDS})
    assert len(real) == REAL_TRAIN_SIZE
    assert network_counts(real) == REAL_TRAIN_COUNTS
    assert encode(real).sum().to_dict() == REAL_TRAIN_POSITIVES
    assert tuple(n for n in struct.dtype.names if n != "image_index") == REAL_TRAIN_FIELD_ORDER


def test_attributes_are_drawn() -> None:
    """Same identity and shot, only the upper colour / sleeve length changed: pixels follow."""
    base = {name: 1 for name in ANNOTATION_FIELDS} | {"age": 2, "clothes": 2, "up": 2}
    camera = make_camera(np.random.default_rng(0), 128, 64)
    shot = Shot("front", 1, 0.9, 32.0, 126.0, 0.0, 10, 1.0, None)

    def render(**changes: int) -> np.ndarray:
        look = make_look(base | changes, np.random.default_rng(1), 128)
        return render_person(look, shot, camera, np.random.default_rng(2), 64)

    red, blue = render(upred=2), render(upblue=2)
    chest = (slice(30, 50), slice(26, 38))
    assert red[chest][..., 0].mean() > blue[chest][..., 0].mean() + 60
    assert blue[chest][..., 2].mean() > red[chest][..., 2].mean() + 60
    short, long = render(upred=2, up=2), render(upred=2, up=1)
    assert np.abs(short.astype(int) - long.astype(int)).sum() > 0


def test_invalid_parameters_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="images_per_id"):
        generate_synthetic_market(tmp_path / "a", images_per_id=3)
    with pytest.raises(ValueError, match="num_test_ids"):
        SyntheticParams(num_test_ids=0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate_synthetic_market(tmp_path / "b", **TINY)


def test_default_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATTRNET_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("ATTRNET_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "attrnet"


def test_ensure_caches_and_does_not_regenerate(tmp_path: Path) -> None:
    root = ensure_synthetic_market(tmp_path, **TINY)
    assert root.parent == tmp_path and (root / MANIFEST_NAME).is_file()
    assert root.name == SyntheticParams(**TINY).folder_name
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert ensure_synthetic_market(tmp_path, **TINY) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps
    other = ensure_synthetic_market(tmp_path, **(TINY | {"seed": 3}))
    assert other != root and root.is_dir()


def test_ensure_regenerates_an_interrupted_generation(tmp_path: Path) -> None:
    root = ensure_synthetic_market(tmp_path, **TINY)
    reference = _hashes(root)
    (root / MANIFEST_NAME).unlink()
    next(root.glob("bounding_box_train/*.jpg")).unlink()
    leftover = tmp_path / f".{root.name}.partial"
    shutil.copytree(root, leftover)
    assert ensure_synthetic_market(tmp_path, **TINY) == root
    assert _hashes(root) == reference
    assert not leftover.exists()


def test_sample_grid(small_set: Path, tmp_path: Path) -> None:
    path = save_sample_grid(small_set, tmp_path / "grid.png", n=3, per_id=4)
    with Image.open(path) as grid:
        assert grid.format == "PNG" and grid.size[0] > 4 * 64 and grid.size[1] >= 3 * 128
