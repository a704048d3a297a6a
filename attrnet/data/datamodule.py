"""LightningDataModule over any data source: identity split, transforms, cache, loaders."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from attrnet.data.dataset import AttributeImageDataset
from attrnet.data.sources import DatasetTables, DataSource
from attrnet.data.splits import STUDY_VAL_FRACTION, IdentitySplit, split_identities
from attrnet.data.transforms import eval_transform, train_transform


class AttributeDataModule(L.LightningDataModule):
    """Splits a source's labelled pool by identity into train/val and serves both.

    ``split_file`` reuses a saved split instead of drawing one; ``cache_images`` decodes all
    images once into memory (uint8), which suits Market-1501 (~318 MB at 256x128).
    """

    def __init__(
        self,
        source: DataSource,
        image_size: tuple[int, int] = (256, 128),
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache_images: bool = True,
        flip: float = 0.5,
        pad: int = 10,
        erasing: float = 0.5,
        val_count: int | None = None,
        val_fraction: float = STUDY_VAL_FRACTION,
        split_seed: int = 0,
        split_file: str | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.cache_images = cache_images
        self.augment = dict(flip=flip, pad=pad, erasing=erasing)
        self.val_count, self.val_fraction, self.split_seed = val_count, val_fraction, split_seed
        self.split_file = split_file
        self.tables: DatasetTables | None = None
        self.split: IdentitySplit | None = None
        self.train_frame: pd.DataFrame | None = None
        self.val_frame: pd.DataFrame | None = None

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if self.tables is not None:
            return
        self.tables = self.source.load()
        labelled = self.tables.labelled
        if self.split_file:
            self.split = IdentitySplit.load(self.split_file)
        else:
            self.split = split_identities(
                labelled["person_id"],
                val_count=self.val_count,
                val_fraction=self.val_fraction,
                seed=self.split_seed,
            )
        self.train_frame = labelled[labelled["person_id"].isin(self.split.train_ids)].reset_index(
            drop=True
        )
        self.val_frame = labelled[labelled["person_id"].isin(self.split.val_ids)].reset_index(
            drop=True
        )
        self.train_set = self._dataset(self.train_frame, train=True)
        self.val_set = self._dataset(self.val_frame, train=False)

    @property
    def attributes(self) -> list[str]:
        """Names of the binary targets, in model-output order."""
        assert self.tables is not None, "call setup() first"
        return self.tables.attributes

    @property
    def positive_ratio(self) -> list[float]:
        """Per-attribute positive ratio on the training split (for loss weights)."""
        assert self.train_frame is not None, "call setup() first"
        return self.train_frame[self.attributes].to_numpy(np.float64).mean(axis=0).tolist()

    def save_split(self, folder: str | Path) -> Path:
        """Write the identity split into ``folder/split.json`` so a run can be reproduced."""
        assert self.split is not None, "call setup() first"
        path = Path(folder) / "split.json"
        self.split.save(path)
        return path

    def _dataset(self, frame: pd.DataFrame, train: bool) -> AttributeImageDataset:
        transform = train_transform(self.image_size, **self.augment) if train else eval_transform()
        targets = frame[self.attributes].to_numpy(np.float32)
        return AttributeImageDataset(
            frame["path"].tolist(), targets, self.image_size, transform, cache=self.cache_images
        )

    def image_loader(self, paths: list[str]) -> DataLoader:
        """An evaluation loader over arbitrary images (prediction, re-ID features)."""
        dataset = AttributeImageDataset(paths, None, self.image_size, eval_transform())
        return self._loader(dataset, shuffle=False, batch_size=self.eval_batch_size)

    def _loader(self, dataset: AttributeImageDataset, shuffle: bool, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) > batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False, batch_size=self.eval_batch_size)
