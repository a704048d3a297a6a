"""PETA (Deng et al., ACM MM 2014) in its release layout: ``<subset>/archive/`` holds the images
and ``Label.txt``, one line per id: ``<id> <label> <label> ...``.

An id labels every image whose file name, up to its first ``_`` or ``.``, equals the id's text up
to its first ``.`` (``0059`` labels ``0059_001.jpg``; ``0606.png`` labels ``0606.png``). Identity
is (subset, id). Images without a label line and label lines without images are counted and
reported. Attributes keep PETA's names; the literature evaluates 35 of the 106 labels.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from attrnet.data.decode import IMAGE_SUFFIXES
from attrnet.data.errors import DataError
from attrnet.data.sources import DatasetTables, DataSource
from attrnet.data.splits import NO_ID, partition_images

#: The 35 attributes evaluated in the literature (Deng et al. 2014; Rethinking_of_PAR's list),
#: in Label.txt's spelling.
PETA_35 = (
    "accessoryHat", "accessoryMuffler", "accessoryNothing", "accessorySunglasses", "hairLong",
    "upperBodyCasual", "upperBodyFormal", "upperBodyJacket", "upperBodyLogo", "upperBodyPlaid",
    "upperBodyShortSleeve", "upperBodyThinStripes", "upperBodyTshirt", "upperBodyOther",
    "upperBodyVNeck", "lowerBodyCasual", "lowerBodyFormal", "lowerBodyJeans", "lowerBodyShorts",
    "lowerBodyShortSkirt", "lowerBodyTrousers", "footwearLeatherShoes", "footwearSandals",
    "footwearShoes", "footwearSneakers", "carryingBackpack", "carryingOther",
    "carryingMessengerBag", "carryingNothing", "carryingPlasticBags", "personalLess30",
    "personalLess45", "personalLess60", "personalLarger60", "personalMale",
)  # fmt: skip
#: The usual random partition of PETA's 19,000 images (train / val / test).
PETA_SPLIT_SIZES = (9500, 1900, 7600)
PETA_SPLITS = ("random", "identity")


def read_peta_labels(path: str | Path) -> dict[str, list[str]]:
    """One subset's ``Label.txt``: id -> its labels. A repeated id is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: PETA label file does not exist")
    labels: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        fields = line.split()
        if not fields:
            continue
        if fields[0] in labels:
            raise DataError(f"{path}: line {number + 1}: id {fields[0]!r} labelled twice")
        labels[fields[0]] = fields[1:]
    if not labels:
        raise DataError(f"{path}: no label lines; expected '<id> <label> <label> ...'")
    return labels


def image_key(name: str) -> str:
    """The part of a file name (or an id) up to its first ``_`` or ``.``."""
    return re.split(r"[_.]", name, maxsplit=1)[0]


def scan_peta(root: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """All labelled images of the subsets under ``root``: path, image, person_id, camera_id,
    subset, labels (a list); and the counts of unmatched images and label lines."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: PETA root folder does not exist")
    subsets = sorted(p.parent.parent for p in root.glob("*/archive/Label.txt"))
    if not subsets:
        raise DataError(f"{root}: no PETA subset found; expected <subset>/archive/Label.txt")
    rows, skipped = [], {"images_without_labels": 0, "labels_without_images": 0}
    for subset in subsets:
        labels = read_peta_labels(subset / "archive" / "Label.txt")
        by_key = {image_key(label_id): label_id for label_id in labels}
        images = sorted(
            p for p in (subset / "archive").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
        )
        used = set()
        for image in images:
            label_id = by_key.get(image_key(image.name))
            if label_id is None:
                skipped["images_without_labels"] += 1
                continue
            used.add(label_id)
            name = f"{subset.name}/{image.name}"
            rows.append((str(image), name, subset.name, label_id, labels[label_id]))
        skipped["labels_without_images"] += len(labels) - len(used)
    frame = pd.DataFrame(rows, columns=["path", "image", "subset", "label_id", "labels"])
    if frame.empty:
        raise DataError(f"{root}: no PETA image matches a label line")
    # identity = (subset, id), numbered 1.. in sorted order (0 and -1 mean distractor/junk)
    keys = frame["subset"] + "/" + frame["label_id"]
    frame["person_id"] = pd.factorize(keys, sort=True)[0] + 1
    frame["camera_id"] = NO_ID
    return frame, skipped


def peta_split_sizes(count: int) -> tuple[int, int, int]:
    """The 9,500 / 1,900 / 7,600 proportions for ``count`` images (exactly those for 19,000)."""
    train = round(count * PETA_SPLIT_SIZES[0] / sum(PETA_SPLIT_SIZES))
    val = round(count * PETA_SPLIT_SIZES[1] / sum(PETA_SPLIT_SIZES))
    return train, val, count - train - val


class PetaSource(DataSource):
    """PETA from its release folder (the ten subset folders, or any of them).

    ``attributes``: ``peta35`` (the literature's 35), ``all`` (every label found: 106 on the full
    release) or a list of label names. ``split``: ``random`` (images shuffled into train / val /
    test of ``split_sizes``, default the 9,500 / 1,900 / 7,600 proportions) or ``identity`` (the
    same sizes as closely as whole identities allow, no identity in two splits); seeded by
    ``split_seed``. The datamodule saves the split as ``split.csv`` in the run folder.
    """

    def __init__(
        self,
        root: str | Path,
        attributes: str | list[str] = "peta35",
        split: str = "random",
        split_seed: int = 0,
        split_sizes: list[int] | None = None,
    ) -> None:
        if split not in PETA_SPLITS:
            raise ValueError(f"data.source.split must be one of {PETA_SPLITS}, got {split!r}")
        if isinstance(attributes, str) and attributes not in ("peta35", "all"):
            raise ValueError(
                f"data.source.attributes must be peta35, all or a list of names, got {attributes!r}"
            )
        self.root = Path(root)
        self.attributes = attributes
        self.split, self.split_seed = split, split_seed
        self.split_sizes = tuple(split_sizes) if split_sizes else None

    def load(self) -> DatasetTables:
        frame, skipped = scan_peta(self.root)
        if any(skipped.values()):
            warnings.warn(
                f"{self.root}: {skipped['images_without_labels']} image(s) without a label line "
                f"and {skipped['labels_without_images']} label line(s) without images are not "
                "used",
                stacklevel=2,
            )
        found = sorted({label for labels in frame["labels"] for label in labels})
        chosen = self.attributes
        names = list(PETA_35) if chosen == "peta35" else found if chosen == "all" else list(chosen)
        targets = np.zeros((len(frame), len(names)), dtype=np.int64)
        column = {name: index for index, name in enumerate(names)}
        for row, labels in enumerate(frame["labels"]):
            for label in labels:
                if label in column:
                    targets[row, column[label]] = 1
        sizes = self.split_sizes or peta_split_sizes(len(frame))
        groups = frame["person_id"].to_numpy() if self.split == "identity" else None
        frame["split"] = partition_images(len(frame), sizes, self.split_seed, groups)
        labelled = pd.concat(
            [
                frame[["path", "image", "person_id", "camera_id", "split", "subset"]],
                pd.DataFrame(targets, columns=names),
            ],
            axis=1,
        )
        return DatasetTables(names, labelled, skipped=skipped)
