"""LightningDataModule over any data source: identity split, uint8 datasets, loaders, and the
batch pipeline (resize, augment, normalise) on the training device."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.data import DataLoader, Sampler

from attrnet import config_checks as checks
from attrnet.data.augment import eval_batch, train_batch
from attrnet.data.checks import (
    find_missing,
    refuse_missing,
    refuse_unlabelled,
    single_class_by_split,
    single_class_message,
)
from attrnet.data.dataset import AttributeImageDataset, pass_batch
from attrnet.data.errors import DataError
from attrnet.data.images import find_unreadable
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from attrnet.data.pk_sampler import IdentityBatchSampler
from attrnet.data.samplers import EpochShuffleSampler
from attrnet.data.sources import DatasetTables, DataSource
from attrnet.data.splits import (
    ATTRIBUTE_SPLITS,
    NO_ID,
    IdentitySplit,
    split_identities,
)
from attrnet.io import atomic_open

log = logging.getLogger(__name__)


class AttributeDataModule(L.LightningDataModule):
    """Serves a source's train and val images (and keeps its test images for evaluation).

    A source that marks its own ``val`` images (PETA, PA-100K, a generic CSV with val rows)
    keeps its split; otherwise the ``train`` pool is split by identity into train/val.

    Datasets yield uint8 images decoded once at ``stored_size`` (default ``image_size``; the
    configs use a source's native size where all its images share one), and
    ``on_after_batch_transfer`` resizes, augments (training) and normalises whole batches on
    whatever device training uses (``attrnet.data.augment``). ``cache_images`` keeps every
    decoded image in memory (uint8), which suits Market-1501 (~318 MB at its native 128x64);
    otherwise loader workers decode each batch. ``split_file`` reuses a saved split instead of
    drawing one. ``sampler="identity"`` draws P x K training batches (``batch_size //
    num_instances`` identities with ``num_instances`` images each) for identity losses such as
    the triplet loss.
    Training images without a person id (``NO_ID``, e.g. part of RAP) are left out of identity
    batches; datasets label such images' identity -1 (validation re-ID leaves them out).

    ``setup`` refuses, before decoding anything, image files that do not exist (one line: the
    count per split and the first paths) and attributes without any known training label, and
    logs the attributes that lack a positive or a negative in a split.

    The settings have no defaults here: ``conf/_datamodule.yaml`` and the dataset's config supply
    them (one source of truth).
    """

    def __init__(
        self,
        source: DataSource,
        *,
        image_size: tuple[int, int],
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        pin_memory: bool,
        cache_images: bool,
        flip: float,
        pad: int,
        erasing: float,
        val_count: int | None,
        val_fraction: float,
        split_seed: int,
        split_file: str | None,
        sampler: str,
        num_instances: int,
        stored_size: tuple[int, int] | None,
        skip_bad_images: bool,
        max_image_pixels: int,
        shuffle_seed: int,
    ) -> None:
        super().__init__()
        self.source = source
        self.image_size = checks.image_size(image_size, "data.image_size")
        self.batch_size = checks.positive_int(batch_size, "data.batch_size")
        self.eval_batch_size = checks.positive_int(
            batch_size if eval_batch_size is None else eval_batch_size, "data.eval_batch_size"
        )
        self.num_workers = checks.non_negative_int(num_workers, "data.num_workers")
        self.pin_memory = pin_memory
        self.cache_images = cache_images
        self.augment = dict(flip=flip, pad=pad, erasing=erasing)
        self.val_count, self.val_fraction, self.split_seed = val_count, val_fraction, split_seed
        self.split_file = split_file
        if sampler not in ("random", "identity"):
            raise ValueError(f"data.sampler must be 'random' or 'identity', got {sampler!r}")
        self.sampler, self.num_instances = sampler, num_instances
        self.stored_size = (
            checks.image_size(stored_size, "data.stored_size") if stored_size else self.image_size
        )
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self._augment_generator: torch.Generator | None = None
        self._augment_seed: int | None = None
        self.skip_bad_images, self.max_image_pixels = skip_bad_images, int(max_image_pixels)
        self.shuffle_seed = shuffle_seed
        self.skipped_images: list[str] = []
        self.missing_images: dict[str, list[str]] = {}
        self.tables: DatasetTables | None = None
        self.split: IdentitySplit | None = None
        self.train_frame: pd.DataFrame | None = None
        self.val_frame: pd.DataFrame | None = None
        self.test_frame: pd.DataFrame | None = None
        self.train_set: AttributeImageDataset | None = None
        self.val_set: AttributeImageDataset | None = None

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        """Assign the images to splits, refuse missing image files in one line, warn about
        attributes lacking a class in a split, and build the datasets."""
        if self.train_set is not None:
            return
        self.assign_splits()
        refuse_missing(self.missing_images, self.split_frames())
        refuse_unlabelled(self.train_frame, self.attributes)
        flags = single_class_by_split(self.split_frames(), self.attributes)
        _log_warning(single_class_message(flags))
        self.train_set = self._dataset(self.train_frame)
        self.val_set = self._dataset(self.val_frame)

    def assign_splits(self) -> None:
        """Read the source and assign its images to train, val and test (the source's own val
        images, a saved split or a seeded identity draw). Nothing is decoded: image files that
        do not exist are found by one stat each (``missing_images``); with ``skip_bad_images``
        the unreadable ones (missing ones included) are decoded once and left out."""
        if self.tables is not None:
            return
        self.tables = self.source.load()
        labelled = self.tables.labelled
        if self.sampler == "identity":
            self.tables.require_identities("data.sampler=identity (identity losses)")
        role = labelled["split"].copy()  # train / val / test, "" for an unused image
        if (role == "val").any():  # the source's own validation set
            if self.split_file:
                raise ValueError(
                    f"data.split_file={self.split_file}: this data source defines its own "
                    "validation images (split 'val'); a saved identity split does not apply"
                )
            self.split = None
        else:
            pool = role == "train"
            self.split = self._identity_split(labelled[pool])
            ids = labelled.loc[pool, "person_id"]
            in_train = np.where(ids.isin(self.split.train_ids), "train", "")
            role[pool] = np.where(ids.isin(self.split.val_ids), "val", in_train)
        if self.sampler == "identity":  # P x K batches need an identity for every image
            role[(role == "train") & (labelled["person_id"] == NO_ID)] = ""
        self._set_frames(labelled, role)
        self.missing_images = find_missing(self.split_frames())
        if self.skip_bad_images:
            role[~labelled["path"].isin(self._without_unreadable(labelled)["path"])] = ""
            self._set_frames(labelled, role)

    def _set_frames(self, labelled: pd.DataFrame, role: pd.Series) -> None:
        labelled = labelled.assign(split=role)
        self.train_frame, self.val_frame, self.test_frame = (
            labelled[role == name].reset_index(drop=True) for name in ATTRIBUTE_SPLITS
        )

    def _identity_split(self, pool: pd.DataFrame) -> IdentitySplit:
        """The train/val split of the pool by identity: the saved one or a seeded draw."""
        if self.split_file:
            split = IdentitySplit.load(self.split_file)
            split.check_covers(pool["person_id"], self.split_file)
            return split
        if not self.tables.has_identities:
            raise DataError(
                "the data source has no person identities and no validation images (split "
                "'val'); it cannot be split by identity, so it needs its own val rows"
            )
        return split_identities(
            pool["person_id"],
            val_count=self.val_count,
            val_fraction=self.val_fraction,
            seed=self.split_seed,
        )

    def split_frames(self) -> dict[str, pd.DataFrame]:
        """The non-empty image tables by split: train, val, test, query, gallery."""
        assert self.tables is not None, "call setup() first"
        frames = {
            "train": self.train_frame,
            "val": self.val_frame,
            "test": self.test_frame,
            "query": self.tables.query,
            "gallery": self.tables.gallery,
        }
        return {name: frame for name, frame in frames.items() if frame is not None and len(frame)}

    @property
    def attributes(self) -> list[str]:
        """Names of the binary targets, in model-output order."""
        assert self.tables is not None, "call setup() first"
        return self.tables.attributes

    @property
    def positive_ratio(self) -> list[float]:
        """Per-attribute positive ratio on the training split (for loss weights), over the known
        labels (unknown cells are NaN)."""
        assert self.train_frame is not None, "call setup() first"
        return self.train_frame[self.attributes].mean(axis=0, skipna=True).tolist()

    @property
    def num_train_identities(self) -> int:
        """Number of identities in the training split (classes of an identity head)."""
        assert self.train_frame is not None, "call setup() first"
        ids = self.train_frame["person_id"]
        return int(ids[ids != NO_ID].nunique())

    def require_identified_training(self, purpose: str) -> None:
        """Refuse ``purpose`` (identity losses) when training images without a person id would
        reach it: ``data.sampler=identity`` leaves them out, the random sampler does not."""
        assert self.train_frame is not None, "call setup() first"
        unidentified = int((self.train_frame["person_id"] == NO_ID).sum())
        if unidentified:
            raise DataError(
                f"{purpose}: {unidentified} training image(s) have no person id; use "
                "data.sampler=identity, which trains on the identified images only"
            )

    def save_split(self, folder: str | Path) -> Path:
        """Write the split into ``folder`` so a run can be reproduced: ``split.csv`` (path,
        person_id, split of every train/val/test image) and, when the datamodule drew the
        identity split, ``split.json`` (reusable as ``split_file``). Returns the file that
        defines the split: ``split.json``, else ``split.csv``."""
        assert self.tables is not None, "call setup() first"
        folder = Path(folder)
        frames = [self.train_frame, self.val_frame, self.test_frame]
        table = pd.concat(frames)[["path", "person_id", "split"]]
        with atomic_open(folder / "split.csv", "w", encoding="utf-8", newline="") as handle:
            table.to_csv(handle, index=False)
        if self.split is None:
            return folder / "split.csv"
        self.split.save(folder / "split.json")
        return folder / "split.json"

    def _without_unreadable(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Drop the rows whose image cannot be decoded (``skip_bad_images``), with a warning."""
        bad = find_unreadable(
            frame["path"].tolist(), self.stored_size, max_pixels=self.max_image_pixels
        )
        self.skipped_images = sorted(bad)
        if bad:
            names = ", ".join(Path(p).name for p in self.skipped_images[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            rank_zero_warn(
                f"data.skip_bad_images: skipped {len(bad)} unreadable image(s) of {len(frame)}: "
                f"{names}{more} (first error: {bad[self.skipped_images[0]]})"
            )
        return frame[~frame["path"].isin(bad)]

    def _dataset(self, frame: pd.DataFrame) -> AttributeImageDataset:
        """uint8 images at the stored size, with targets and identity class labels."""
        targets = frame[self.attributes].to_numpy(np.float32, copy=True)
        # identity class labels within the split: sorted person ids -> 0..n-1; NO_ID -> -1
        person_ids = frame["person_id"].to_numpy()
        identified = person_ids != NO_ID
        identities = np.full(len(frame), -1, dtype=np.int64)
        identities[identified] = np.unique(person_ids[identified], return_inverse=True)[1]
        return AttributeImageDataset(
            frame["path"].tolist(),
            targets,
            self.stored_size,
            cache=self.cache_images,
            identities=identities,
            max_pixels=self.max_image_pixels,
        )

    def image_loader(self, paths: list[str]) -> DataLoader:
        """A loader of uint8 images at ``image_size`` (decoded as ``attrnet.load`` does) for the
        prediction path (``run_module``), which normalises them as training did."""
        dataset = AttributeImageDataset(
            paths, None, self.image_size, max_pixels=self.max_image_pixels
        )
        return self._loader(dataset, shuffle=False, batch_size=self.eval_batch_size)

    def _loader(
        self,
        dataset: AttributeImageDataset,
        shuffle: bool,
        batch_size: int,
        sampler: Sampler | None = None,
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            drop_last=shuffle and len(dataset) > batch_size,
            **self._loader_options(dataset, train=shuffle),
        )

    def _loader_options(self, dataset: AttributeImageDataset, train: bool) -> dict[str, Any]:
        """Settings every loader shares; a training loader draws from its own generator."""
        return dict(
            collate_fn=pass_batch,
            generator=self._loader_generator() if train else None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.sampler == "identity":
            return self._identity_loader()
        return self._loader(
            self.train_set, shuffle=True, batch_size=self.batch_size, sampler=self._epoch_sampler()
        )

    def _epoch_sampler(self) -> EpochShuffleSampler:
        """Training order from (shuffle_seed, epoch) alone, from the epoch a resume starts at."""
        epoch = self.trainer.fit_loop.epoch_progress.current.processed if self.trainer else 0
        return EpochShuffleSampler(len(self.train_set), seed=self.shuffle_seed, epoch=epoch)

    def _loader_generator(self) -> torch.Generator:
        """The training loader's own generator: its worker seed draws leave the global RNG
        alone, so ``attrnet.callbacks.EpochSeed`` makes augmentation depend on the epoch only."""
        return torch.Generator().manual_seed(self.shuffle_seed)

    def _identity_loader(self) -> DataLoader:
        """P x K batches; under DDP Lightning swaps the inner sampler for a distributed one."""
        batch_sampler = IdentityBatchSampler(
            self._epoch_sampler(),
            self.train_set.identities.tolist(),
            num_instances=self.num_instances,
            batch_size=self.batch_size,
        )
        return DataLoader(
            self.train_set,
            batch_sampler=batch_sampler,
            **self._loader_options(self.train_set, train=True),
        )

    def val_dataloader(self) -> DataLoader:
        """Under DDP each rank scores its share of the images exactly once (Lightning's
        default sampler repeats some to even the shards), so the sum-reduced metrics equal a
        single process's."""
        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(
                self.val_set,
                num_replicas=self.trainer.world_size,
                rank=self.trainer.global_rank,
                shuffle=False,
            )
        return self._loader(
            self.val_set, shuffle=False, batch_size=self.eval_batch_size, sampler=sampler
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Resize, augment (training) and normalise the uint8 batch where it now is (the
        training device): the one input pipeline, for training and validation alike."""
        images = batch["image"]
        normalize = self.normalize.to(images.device)  # moves the constants once per device
        module = self.trainer.lightning_module
        options = dict(channels_last=bool(getattr(module, "channels_last", False)))
        if self.trainer.training:
            generator = self._device_generator(images.device)
            images = train_batch(
                images, self.image_size, normalize, **self.augment, generator=generator, **options
            )
        else:
            images = eval_batch(images, self.image_size, normalize, **options)
        return {**batch, "image": images}

    def _device_generator(self, device: torch.device) -> torch.Generator:
        """The batch augmentation's random stream on ``device``, one per DDP rank (ranks may be
        seeded alike, and the global generator would then give every rank the same draws). It
        is reseeded whenever the global seed changes (``EpochSeed`` at each epoch start)."""
        seed = (torch.initial_seed() + self.trainer.global_rank) % 2**63
        generator = self._augment_generator
        if generator is None or generator.device != device or self._augment_seed != seed:
            self._augment_generator = torch.Generator(device).manual_seed(seed)
            self._augment_seed = seed
        return self._augment_generator


@rank_zero_only
def _log_warning(message: str | None) -> None:
    """A warning in the run's log (``train.log``), written once under DDP."""
    if message:
        log.warning(message)
