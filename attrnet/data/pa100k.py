"""PA-100K (Liu et al., ICCV 2017) from its official ``annotation.mat``.

The file holds ``attributes`` (26 names), ``{train,val,test}_images_name`` (cell arrays of file
names) and ``{train,val,test}_label`` (uint8 0/1, one row per image): the official 80,000 /
10,000 / 10,000 split. Images lie in ``data/`` (or ``release_data/release_data/``). PA-100K has
no person identities: its tables carry ``NO_ID``, so re-ID and identity losses refuse it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from attrnet.data.errors import DataError
from attrnet.data.readers import cell_strings, load_mat
from attrnet.data.sources import DatasetTables, DataSource
from attrnet.data.splits import ATTRIBUTE_SPLITS, NO_ID

PA100K_IMAGE_DIRS = ("data", "release_data/release_data")


def read_pa100k_annotations(path: str | Path) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """The attribute names and, per split, a frame of ``image`` + one 0/1 column per attribute."""
    path = Path(path)
    mat = load_mat(path, "PA-100K annotation")
    fields = ("images_name", "label")
    wanted = ["attributes"] + [f"{split}_{field}" for split in ATTRIBUTE_SPLITS for field in fields]
    missing = [key for key in wanted if key not in mat]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; expected {wanted}")
    attributes = cell_strings(mat["attributes"], f"{path} [attributes]")
    splits = {}
    for split in ATTRIBUTE_SPLITS:
        names = cell_strings(mat[f"{split}_images_name"], f"{path} [{split}_images_name]")
        labels = np.asarray(mat[f"{split}_label"])
        if labels.shape != (len(names), len(attributes)):
            raise DataError(
                f"{path}: {split}_label has shape {labels.shape}, expected "
                f"({len(names)}, {len(attributes)}) (images x attributes)"
            )
        if not np.isin(labels, (0, 1)).all():
            row = int(np.argwhere(~np.isin(labels, (0, 1)))[0, 0])
            raise DataError(f"{path}: {split}_label row {row + 1} ({names[row]}): expected 0 or 1")
        frame = pd.DataFrame(labels.astype(np.int64), columns=attributes)
        frame.insert(0, "image", names)
        splits[split] = frame
    return attributes, splits


class Pa100kSource(DataSource):
    """PA-100K: ``root`` holds ``annotation.mat`` and the image folder (``data/`` or
    ``release_data/release_data/``, or ``image_dir``). Images named in the annotation file
    but absent on disk, and images on disk that it does not name, are counted and reported."""

    def __init__(
        self, root: str | Path, annotations: str = "annotation.mat", image_dir: str | None = None
    ) -> None:
        self.root = Path(root)
        self.annotations = annotations
        self.image_dir = image_dir

    def _images(self) -> Path:
        candidates = [self.image_dir] if self.image_dir else PA100K_IMAGE_DIRS
        for folder in candidates:
            if (self.root / folder).is_dir():
                return self.root / folder
        raise DataError(f"{self.root}: no PA-100K image folder; expected one of {candidates}")

    def load(self) -> DatasetTables:
        annotations = Path(self.annotations)
        if not annotations.is_absolute():
            annotations = self.root / annotations
        attributes, splits = read_pa100k_annotations(annotations)
        folder = self._images()
        frame = pd.concat([t.assign(split=s) for s, t in splits.items()], ignore_index=True)
        on_disk = {p.name for p in folder.iterdir()}
        present = frame["image"].isin(on_disk)
        skipped = {
            "labels_without_images": int((~present).sum()),
            "images_without_labels": len(on_disk - set(frame["image"])),
        }
        if any(skipped.values()):
            warnings.warn(
                f"{folder}: {skipped['labels_without_images']} annotated image(s) missing and "
                f"{skipped['images_without_labels']} unannotated file(s) are not used",
                stacklevel=2,
            )
        frame = frame[present].reset_index(drop=True)
        frame.insert(0, "path", [str(folder / name) for name in frame["image"]])
        frame.insert(2, "person_id", NO_ID)
        frame.insert(3, "camera_id", NO_ID)
        columns = ["path", "image", "person_id", "camera_id", "split", *attributes]
        return DatasetTables(attributes, frame[columns], skipped=skipped)
