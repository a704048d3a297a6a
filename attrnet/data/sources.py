"""Data sources: each turns a dataset on disk into image tables with binary attribute targets.

A source has ``prepare()`` (download-free preparation, e.g. generating the synthetic set) and
``load()`` returning ``DatasetTables``. The attribute set comes from the source, never from a
fixed list downstream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from attrnet.attributes import MARKET_TARGETS
from attrnet.data.errors import DataError
from attrnet.data.generic_csv import read_generic_csv
from attrnet.data.labels import attach_identity_labels
from attrnet.data.market import scan_anonymous_folder, scan_market_folder
from attrnet.data.readers import read_course_annotations, read_market_attribute_mat
from attrnet.data.splits import ATTRIBUTE_SPLITS, NO_ID, check_disjoint_identities
from attrnet.synthetic import SyntheticParams, ensure_synthetic_market


@dataclass
class DatasetTables:
    """A source's image tables: ``labelled`` rows carry ``split`` train, val or test (sources
    without their own validation set mark the whole pool ``train``); optional query/gallery
    tables for re-ID; ``skipped`` counts what the reader could not use (reported, not dropped
    silently). Person and camera ids are ``NO_ID`` where a dataset has none."""

    attributes: list[str]
    labelled: pd.DataFrame
    query: pd.DataFrame | None = None
    gallery: pd.DataFrame | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def has_identities(self) -> bool:
        """Whether the labelled images carry person ids (PA-100K's do not)."""
        return bool((self.labelled["person_id"] != NO_ID).any())

    def require_identities(self, purpose: str) -> None:
        """Refuse ``purpose`` (re-ID, identity losses) clearly on data without person ids."""
        if not self.has_identities:
            raise DataError(
                f"{purpose} needs person identities, but this data source has none (e.g. "
                "PA-100K labels images, not people); use a dataset with person ids"
            )


class DataSource:
    """Base class: a dataset on disk that can be prepared and loaded into tables."""

    def prepare(self) -> None:
        """Create files that must exist before ``load`` (runs once, on one process)."""

    def load(self) -> DatasetTables:
        raise NotImplementedError


class MarketSource(DataSource):
    """Market-1501 original layout with ``market_attribute.mat`` (labels joined by person id)."""

    def __init__(self, root: str | Path, annotations: str = "market_attribute.mat") -> None:
        self.root = Path(root)
        self.annotations = annotations

    def _annotation_path(self) -> Path:
        path = Path(self.annotations)
        return path if path.is_absolute() else self.root / path

    def load(self) -> DatasetTables:
        if not self.root.is_dir():
            raise DataError(f"{self.root}: Market-1501 root folder does not exist")
        labels = read_market_attribute_mat(self._annotation_path())["train"]
        train = scan_market_folder(self.root / "bounding_box_train", "train")
        labelled = attach_identity_labels(train, labels, str(self._annotation_path()))
        query = scan_market_folder(self.root / "query", "query")
        gallery = scan_market_folder(self.root / "bounding_box_test", "gallery")
        return DatasetTables(list(MARKET_TARGETS), labelled, query, gallery)


class CourseSource(DataSource):
    """The study's layout: ``train/`` + ``annotations_train.csv``; unlabelled ``queries/``,
    ``test/``."""

    def __init__(
        self,
        root: str | Path,
        annotations: str = "annotations_train.csv",
        train_dir: str = "train",
        query_dir: str = "queries",
        test_dir: str = "test",
    ) -> None:
        self.root = Path(root)
        self.annotations = annotations
        self.train_dir, self.query_dir, self.test_dir = train_dir, query_dir, test_dir

    def load(self) -> DatasetTables:
        if not self.root.is_dir():
            raise DataError(f"{self.root}: course dataset root folder does not exist")
        csv = self.root / self.annotations
        labels = read_course_annotations(csv)
        train = scan_market_folder(self.root / self.train_dir, "train")
        labelled = attach_identity_labels(train, labels, str(csv))
        query = self._optional_anonymous(self.query_dir, "query")
        gallery = self._optional_anonymous(self.test_dir, "gallery")
        return DatasetTables(list(MARKET_TARGETS), labelled, query, gallery)

    def _optional_anonymous(self, folder: str, split: str) -> pd.DataFrame | None:
        path = self.root / folder
        return scan_anonymous_folder(path, split) if path.is_dir() else None


class GenericCsvSource(DataSource):
    """Any dataset as one CSV: image, person_id, optional camera_id/split, attribute columns of
    1 (yes), 0 (no) or an empty cell (unknown); see ``attrnet.data.generic_csv``.

    ``split`` rows: ``train`` (the pool; split by identity into train/val unless ``val`` rows
    exist), ``val``, ``test`` (evaluated after training, never trained on), ``query`` and
    ``gallery`` (re-ID). An identity in two of train/val/test is refused.
    """

    def __init__(self, csv: str | Path, root: str | Path | None = None) -> None:
        self.csv = Path(csv)
        self.root = Path(root) if root is not None else self.csv.parent

    def load(self) -> DatasetTables:
        frame, attributes = read_generic_csv(self.csv, self.root)
        check_disjoint_identities(frame, str(self.csv))
        if not (frame["split"] == "train").any():
            raise DataError(f"{self.csv}: no training rows (no row has split 'train')")
        labelled = frame[frame["split"].isin(ATTRIBUTE_SPLITS)].reset_index(drop=True)
        return DatasetTables(
            attributes, labelled, _split_rows(frame, "query"), _split_rows(frame, "gallery")
        )


def _split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame | None:
    """The rows of one split, or ``None`` when there are none."""
    rows = frame[frame["split"] == split].reset_index(drop=True)
    return rows if len(rows) else None


class SyntheticSource(DataSource):
    """The embedded synthetic Market set, generated by seed into a cache folder on ``prepare``.

    ``annotations`` picks the reader it is loaded through: ``mat`` (Market layout +
    ``market_attribute.mat``) or ``csv`` (the study's course CSV over ``bounding_box_train``).
    ``params`` are those of ``attrnet.synthetic.SyntheticParams`` (seed, identities, images per
    identity, size, junk, distractors), checked when it is built.
    """

    def __init__(
        self, cache_dir: str | Path | None = None, annotations: str = "mat", **params: int
    ) -> None:
        if annotations not in ("mat", "csv"):
            raise ValueError(f"annotations must be 'mat' or 'csv', got {annotations!r}")
        self.cache_dir = cache_dir
        self.annotations = annotations
        self.params = SyntheticParams(**params)

    def prepare(self) -> Path:
        """Generate the set into the cache unless it is already there; returns its folder."""
        return ensure_synthetic_market(self.cache_dir, **asdict(self.params))

    def load(self) -> DatasetTables:
        root = self.prepare()
        if self.annotations == "mat":
            return MarketSource(root).load()
        course = CourseSource(
            root, train_dir="bounding_box_train", query_dir="query", test_dir="bounding_box_test"
        )
        return course.load()
