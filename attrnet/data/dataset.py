"""A map-style dataset of image paths with optional binary targets and a uint8 image cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from attrnet.data.images import MAX_IMAGE_PIXELS, read_image, read_images


class AttributeImageDataset(Dataset):
    """Yields ``{"image", "target", "index"}`` (and ``"identity"``, a class label of the
    person within the split, when ``identities`` is given); decoded images can be cached.

    With ``cache=True`` every image is decoded and resized once into a single uint8 tensor,
    which DataLoader workers share copy-on-write. Images declaring more than ``max_pixels``
    pixels are refused undecoded (decompression bombs).
    """

    def __init__(
        self,
        paths: list[str],
        targets: np.ndarray | None,
        size: tuple[int, int],
        transform: Callable[[torch.Tensor], torch.Tensor],
        cache: bool = False,
        identities: np.ndarray | None = None,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.paths = list(paths)
        self.identities = None if identities is None else torch.as_tensor(identities).long()
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.size = tuple(size)
        self.transform = transform
        self.max_pixels = max_pixels
        self.images = read_images(self.paths, self.size, max_pixels=max_pixels) if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image = (
            self.images[index]
            if self.images is not None
            else read_image(self.paths[index], self.size, self.max_pixels)
        )
        item: dict[str, torch.Tensor | int] = {"image": self.transform(image), "index": index}
        if self.targets is not None:
            item["target"] = self.targets[index]
        if self.identities is not None:
            item["identity"] = self.identities[index]
        return item


class CachedBatchDataset(AttributeImageDataset):
    """The fast input path's dataset: uint8 images from the cache, untransformed, fetched a whole
    batch at a time. ``DataLoader`` calls ``__getitems__`` with a batch's indices, so a batch is
    one indexing of the cache instead of a Python call per image and a collation; use it with
    ``collate_fn=pass_batch``. It yields exactly what ``AttributeImageDataset`` + the default
    collation would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, cache=True, **kwargs)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        batch = {"image": self.transform(self.images[index]), "index": index}
        if self.targets is not None:
            batch["target"] = self.targets[index]
        if self.identities is not None:
            batch["identity"] = self.identities[index]
        return batch


def pass_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The collation of :class:`CachedBatchDataset` batches: they are batches already."""
    return batch
