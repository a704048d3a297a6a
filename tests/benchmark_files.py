"""Tiny real dataset files in the benchmarks' own layouts (PETA, PA-100K, generic CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
from PIL import Image

PA100K_ATTRIBUTES = ["Female", "AgeOver60", "Age18-60", "Hat", "Glasses", "Backpack"]


def write_image(path: Path, seed: int, size: tuple[int, int] = (24, 12)) -> None:
    """A small noisy crop whose colour depends on ``seed`` (any suffix PIL can write)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_peta(root: Path) -> Path:
    """Two PETA subsets in the release layout with the reader's edge cases: ids of any length,
    an id that is a file name, ``.bmp``/``.jpeg``/``.png``, an image without a label line and
    a label line without images. 16 labelled images, 8 identities."""
    grid = root / "GRID" / "archive"
    labels = {
        "1": "personalMale personalLess30 upperBodyBlack hairShort",
        "230": "personalFemale personalLess45 upperBodyRed hairLong carryingBackpack",
        "0007": "personalMale personalLarger60 upperBodyBlack footwearSneakers",
        "0999": "personalFemale personalLess30 upperBodyRed",  # no images
    }
    names = ["1_a.bmp", "1_b.bmp", "1_c.bmp", "230_x.jpeg", "230_y.jpeg", "0007.bmp", "0007_2.bmp"]
    names += ["0042_1.bmp"]  # no label line
    for index, name in enumerate(names):
        write_image(grid / name, index)
    _write_label_file(grid, labels)
    cuhk = root / "CUHK" / "archive"
    cuhk_labels = {}
    for index in range(5):
        name = f"{index + 10:04d}.png"
        write_image(cuhk / name, 100 + index)
        gender = "personalMale" if index % 2 else "personalFemale"
        cuhk_labels[name] = f"{gender} personalLess30 hairLong upperBodyBlack"
    cuhk_labels["0100.png"] = "personalMale upperBodyBlack"  # no image
    _write_label_file(cuhk, cuhk_labels)
    (root / "notes").mkdir(exist_ok=True)  # a folder that is no subset
    return root


def _write_label_file(folder: Path, labels: dict[str, str]) -> None:
    text = "".join(f"{label_id} {values}\r\n" for label_id, values in labels.items())
    (folder / "Label.txt").write_text(text)


def write_pa100k(root: Path, counts: tuple[int, int, int] = (12, 4, 4)) -> Path:
    """``annotation.mat`` in the official structure (cell arrays of names, uint8 0/1 labels)
    and the crops in ``data/``; the last test image is left off the disk."""
    rng = np.random.default_rng(0)
    content: dict[str, np.ndarray] = {"attributes": _cells(PA100K_ATTRIBUTES)}
    number = 0
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        names = [f"{number + i + 1:06d}.jpg" for i in range(count)]
        number += count
        labels = rng.integers(0, 2, (count, len(PA100K_ATTRIBUTES))).astype(np.uint8)
        labels[0] = 1  # every attribute has a positive in every split
        labels[1] = 0
        content[f"{split}_images_name"] = _cells(names)
        content[f"{split}_label"] = labels
        for index, name in enumerate(names):
            if not (split == "test" and index == count - 1):
                write_image(root / "data" / name, number + index)
    scipy.io.savemat(str(root / "annotation.mat"), content)
    return root


def _cells(values: list[str]) -> np.ndarray:
    """A MATLAB cell column of strings (how annotation.mat stores names)."""
    cells = np.empty((len(values), 1), dtype=object)
    for index, value in enumerate(values):
        cells[index, 0] = np.array([value])
    return cells


def write_generic_csv(root: Path, cameras: bool = False) -> Path:
    """A generic CSV with every split value: 6 train, 2 val, 2 test identities (3 images
    each), and 3 query + 6 gallery images of 3 further people; two attributes."""
    rows = []
    plan = [("train", range(1, 7)), ("val", range(7, 9)), ("test", range(9, 11))]
    for split, people in plan:
        for pid in people:
            for shot in range(3):
                rows.append((f"images/{pid:03d}_{shot}.png", pid, split, shot))
    for pid in range(11, 14):
        rows.append((f"reid/{pid:03d}_q.png", pid, "query", 0))
        rows += [(f"reid/{pid:03d}_g{shot}.png", pid, "gallery", shot) for shot in (1, 2)]
    frame = pd.DataFrame(rows, columns=["image", "person_id", "split", "camera_id"])
    frame["coat"] = (frame["person_id"] % 2).astype(int)
    frame["bag"] = (frame["person_id"] % 3 == 0).astype(int)
    for index, (name, pid) in enumerate(zip(frame["image"], frame["person_id"], strict=True)):
        write_image(root / name, pid * 10 + index % 3)
    if not cameras:
        frame = frame.drop(columns="camera_id")
    frame.to_csv(root / "labels.csv", index=False)
    return root / "labels.csv"


RAP_ATTRIBUTES = [f"attr{index:02d}" for index in range(92)]


def write_rap(root: Path, images: bool = True, all_unknown: int | None = None) -> Path:
    """RAP's release layout with a ``RAP_annotation.mat`` in the real file's structure (one
    struct; cells of names; 1-based partitions; identity -1 for none; label 2 = unknown): 48
    images, 8 identities of 4 images (cameras from the names) and 16 images without identity;
    about a fifth of attributes 0-2 unknown. Five random 36 / 12 partitions; re-ID partition:
    identities 1-5 train, 6-8 test. ``all_unknown``: an attribute column made wholly unknown."""
    rng = np.random.default_rng(1)
    identities = np.array([pid for pid in range(1, 9) for _ in range(4)] + [-1] * 16)
    names = [
        f"CAM{index % 3 + 1:02d}_2014-03-01_clip{index}_tarid{index}_frame{index}_line1.png"
        for index in range(len(identities))
    ]
    labels = rng.integers(0, 2, (len(names), len(RAP_ATTRIBUTES))).astype(np.int32)
    labels[:, :3][rng.random((len(names), 3)) < 0.2] = 2
    if all_unknown is not None:
        labels[:, all_unknown] = 2
    partitions = np.empty((5, 1), dtype=object)
    for number in range(5):
        order = rng.permutation(len(names)) + 1  # 1-based rows
        partitions[number, 0] = {"train_index": order[None, :36], "test_index": order[None, 36:]}
    annotation = {
        "imagesname": _cells(names),
        "label": labels,
        "attribute_eng": _cells(RAP_ATTRIBUTES),
        "attribute_exp": _cells(RAP_ATTRIBUTES[:51]),
        "partion": partitions,
        "identity": identities[:, None].astype(np.int16),
        "reid_partion": {
            "train_identity": np.arange(1, 6, dtype=np.uint16)[None],
            "test_identity": np.arange(6, 9, dtype=np.uint16)[None],
        },
    }
    (root / "RAP_annotation").mkdir(parents=True, exist_ok=True)
    path = root / "RAP_annotation" / "RAP_annotation.mat"
    scipy.io.savemat(str(path), {"RAP_annotation": annotation})
    if images:
        write_rap_images(root, names)
    return root


def write_rap_images(root: Path, names: list[str]) -> None:
    """Small stand-in crops for RAP's image names in ``<root>/RAP_dataset/``."""
    for index, name in enumerate(names):
        write_image(root / "RAP_dataset" / name, index, size=(16, 8))
