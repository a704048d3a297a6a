"""RAP v1 (Li et al., arXiv 1603.07054, 2016) in its release layout: ``<root>/RAP_annotation/
RAP_annotation.mat`` and the images in ``<root>/RAP_dataset/``.

The file's one struct, ``RAP_annotation``, is read by field name: ``imagesname`` (file names),
``label`` (images x 92: 1 yes, 0 no, 2 unknown), ``attribute_eng`` (the 92 names),
``partion`` (five random partitions, ``train_index`` / ``test_index`` 1-based rows),
``identity`` (person id, -1 where an image has none) and ``reid_partion`` (``train_identity`` /
``test_identity``). Label 2 becomes NaN: an unknown label, masked from losses and metrics.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrnet.data.errors import DataError
from attrnet.data.readers import cell_strings, load_mat
from attrnet.data.sources import DatasetTables, DataSource
from attrnet.data.splits import NO_ID, hold_out_validation, study_reid_protocol

#: The literature (Li et al. 2016; Rethinking_of_PAR) evaluates the first 51 attributes.
RAP51_COUNT = 51
RAP_FIELDS = ("imagesname", "label", "attribute_eng", "partion", "identity")
#: ``data.source.partition`` value for the re-ID partition (train / test identities).
REID_PARTITION = "reid"
UNKNOWN_LABEL = 2
CAMERA = re.compile(r"^CAM(\d+)_")


@dataclass
class RapAnnotations:
    """``RAP_annotation.mat`` in plain arrays: rows are images; partitions hold 0-based rows."""

    images: list[str]
    attributes: list[str]
    labels: np.ndarray  # (images, attributes) float64: 0, 1, NaN (unknown)
    identities: np.ndarray  # (images,) int64, NO_ID where there is none
    partitions: list[tuple[np.ndarray, np.ndarray]]  # (train rows, test rows) per partition
    reid_identities: tuple[np.ndarray, np.ndarray] | None  # (train, test) person ids


def _fields(struct: Any, wanted: tuple[str, ...], source: str) -> dict[str, Any]:
    """The named fields of a 1 x 1 MATLAB struct; a missing one is an error naming it."""
    names = getattr(getattr(struct, "dtype", None), "names", None) or ()
    missing = [name for name in wanted if name not in names]
    if missing or np.size(struct) != 1:
        raise DataError(f"{source}: missing field(s) {missing}; expected a struct with {wanted}")
    return {name: struct[name].ravel()[0] for name in names}


def _rows(value: Any, count: int, source: str) -> np.ndarray:
    """1-based MATLAB row numbers as unique 0-based rows, each within ``count`` images."""
    rows = np.asarray(value).ravel().astype(np.int64) - 1
    bad = (rows < 0) | (rows >= count)
    if bad.any():
        raise DataError(f"{source}: index {rows[bad][0] + 1} outside 1..{count} (1-based rows)")
    if len(np.unique(rows)) != len(rows):
        raise DataError(f"{source}: an image index appears twice")
    return rows


def _labels(raw: np.ndarray, images: list[str], attributes: list[str], path: Path) -> np.ndarray:
    """Check the label matrix (0, 1, 2 only) and turn 2 into NaN."""
    raw = np.asarray(raw)
    if raw.shape != (len(images), len(attributes)):
        raise DataError(
            f"{path}: label has shape {raw.shape}, expected ({len(images)}, {len(attributes)}) "
            "(images x attributes)"
        )
    bad = ~np.isin(raw, (0, 1, UNKNOWN_LABEL))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: label row {row + 1} ({images[row]}), attribute {attributes[column]!r}: "
            f"{raw[row, column]}, expected 0, 1 or 2 (unknown)"
        )
    labels = raw.astype(np.float64)
    labels[raw == UNKNOWN_LABEL] = np.nan
    return labels


def read_rap_annotations(path: str | Path) -> RapAnnotations:
    """Read ``RAP_annotation.mat`` by field name, with every check a bad file needs."""
    path = Path(path)
    mat = load_mat(path, "RAP annotation")
    if "RAP_annotation" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: expected the key 'RAP_annotation', found {keys}")
    fields = _fields(mat["RAP_annotation"], RAP_FIELDS, f"{path} [RAP_annotation]")
    images = cell_strings(fields["imagesname"], f"{path} [imagesname]")
    duplicated = pd.Index(images)[pd.Index(images).duplicated()]
    if len(duplicated):
        raise DataError(f"{path}: image {duplicated[0]!r} is named twice in imagesname")
    attributes = cell_strings(fields["attribute_eng"], f"{path} [attribute_eng]")
    labels = _labels(fields["label"], images, attributes, path)
    identities = np.asarray(fields["identity"]).ravel().astype(np.int64)
    if len(identities) != len(images) or (identities < NO_ID).any():
        raise DataError(
            f"{path}: identity must hold one person id (or -1: none) per image; "
            f"found {len(identities)} values for {len(images)} images"
        )
    partitions = []
    for number, entry in enumerate(np.asarray(fields["partion"]).ravel()):
        source = f"{path} [partion {number}]"
        split = _fields(entry, ("train_index", "test_index"), source)
        train = _rows(split["train_index"], len(images), f"{source} train_index")
        test = _rows(split["test_index"], len(images), f"{source} test_index")
        if np.intersect1d(train, test).size:
            raise DataError(f"{source}: an image is in both train_index and test_index")
        partitions.append((train, test))
    reid = None
    if "reid_partion" in fields:
        split = _fields(fields["reid_partion"], ("train_identity", "test_identity"), f"{path}")
        reid = tuple(
            np.asarray(split[f"{side}_identity"]).ravel().astype(np.int64)
            for side in ("train", "test")
        )
    return RapAnnotations(images, attributes, labels, identities, partitions, reid)


class RapSource(DataSource):
    """RAP v1 from its release folder (``annotations`` and ``image_dir`` relative to ``root``).

    ``partition``: 0-4, one of the five official random partitions (33,268 train / 8,317 test
    images each on the full file; these share identities between train and test, as published),
    or ``reid``: the images of ``reid_partion``'s train identities train, those of its test
    identities are the test split and, for ``attrnet-reid mode=market1501``, the query (one
    seeded image per identity) and gallery (the rest); cameras come from the file names
    (``CAM31_...``). Either way ``val_fraction`` of the training identities (with all their
    images) and of the training images without identity validate, seeded by ``split_seed``.
    ``attributes``: ``rap51`` (the literature's first 51), ``all`` (92) or a list of names.
    Annotated images missing on disk, and unannotated files, are counted and reported.
    """

    def __init__(
        self,
        root: str | Path,
        partition: int | str,
        attributes: str | list[str],
        val_fraction: float,
        split_seed: int,
        annotations: str,
        image_dir: str,
    ) -> None:
        if isinstance(attributes, str) and attributes not in ("rap51", "all"):
            raise ValueError(
                f"data.source.attributes must be rap51, all or a list of names, got {attributes!r}"
            )
        if partition != REID_PARTITION and not isinstance(partition, int):
            raise ValueError(f"data.source.partition must be 0-4 or 'reid', got {partition!r}")
        self.root = Path(root)
        self.partition, self.attributes = partition, attributes
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.annotations, self.image_dir = annotations, image_dir

    def _chosen(self, found: list[str], source: Path) -> list[str]:
        if self.attributes == "rap51":
            return found[:RAP51_COUNT]
        if self.attributes == "all":
            return found
        names = list(self.attributes)
        unknown = [name for name in names if name not in found]
        if unknown or len(set(names)) != len(names):
            raise DataError(
                f"{source}: data.source.attributes {unknown or names} not RAP attribute names "
                f"(or repeated); the file names {found[:3]} ... {found[-1]!r}"
            )
        return names

    def _roles(self, annotations: RapAnnotations, source: Path) -> np.ndarray:
        """train / val / test / "" (unused) per annotated image."""
        role = np.full(len(annotations.images), "", dtype=object)
        ids = annotations.identities
        if self.partition == REID_PARTITION:
            if annotations.reid_identities is None:
                raise DataError(f"{source}: no reid_partion field for data.source.partition=reid")
            train_ids, test_ids = annotations.reid_identities
            train = np.flatnonzero(np.isin(ids, train_ids))
            test = np.flatnonzero(np.isin(ids, test_ids))
        else:
            count = len(annotations.partitions)
            if not 0 <= self.partition < count:
                raise ValueError(
                    f"data.source.partition={self.partition}: {source} has partitions 0-{count - 1}"
                )
            train, test = annotations.partitions[self.partition]
        role[test] = "test"
        role[train] = "train"
        held_out = hold_out_validation(ids[train], self.val_fraction, self.split_seed)
        role[train[held_out]] = "val"
        return role

    def load(self) -> DatasetTables:
        path = self.root / self.annotations
        annotations = read_rap_annotations(path)
        names = self._chosen(annotations.attributes, path)
        columns = [annotations.attributes.index(name) for name in names]
        frame = pd.DataFrame(
            {
                "image": annotations.images,
                "person_id": annotations.identities,
                "split": self._roles(annotations, path),
            }
        )
        folder = self.root / self.image_dir
        if not folder.is_dir():
            raise DataError(f"{folder}: RAP image folder does not exist")
        on_disk = {p.name for p in folder.iterdir()}
        present = frame["image"].isin(on_disk)
        used = frame["split"] != ""
        skipped = {
            "labels_without_images": int((~present & used).sum()),
            "images_without_labels": len(on_disk - set(frame["image"])),
            "outside_partition": int((~used).sum()),
        }
        if skipped["labels_without_images"] or skipped["images_without_labels"]:
            warnings.warn(
                f"{folder}: {skipped['labels_without_images']} annotated image(s) missing and "
                f"{skipped['images_without_labels']} unannotated file(s) are not used",
                stacklevel=2,
            )
        frame.insert(0, "path", [str(folder / name) for name in frame["image"]])
        cameras = [CAMERA.match(name) for name in frame["image"]]
        frame.insert(3, "camera_id", [int(m.group(1)) if m else NO_ID for m in cameras])
        targets = pd.DataFrame(annotations.labels[:, columns], columns=names)
        frame = pd.concat([frame, targets], axis=1)[present & used].reset_index(drop=True)
        query = gallery = None
        if self.partition == REID_PARTITION:
            query, gallery = self._query_gallery(frame[frame["split"] == "test"])
        return DatasetTables(names, frame, query, gallery, skipped=skipped)

    def _query_gallery(self, test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One seeded image per test identity is the query, the others the gallery."""
        test = test[["path", "image", "person_id", "camera_id"]].reset_index(drop=True)
        query_rows, gallery_rows = study_reid_protocol(test["person_id"], self.split_seed)
        query = test.iloc[query_rows].assign(split="query").reset_index(drop=True)
        return query, test.iloc[gallery_rows].assign(split="gallery").reset_index(drop=True)
