"""A map-style dataset of image paths with optional binary targets: uint8 batches at one size."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from attrnet.data.images import MAX_IMAGE_PIXELS, read_image, read_images


class AttributeImageDataset(Dataset):
    """Yields ``{"image", "index"}`` (and ``"target"``, and ``"identity"``: a class label of the
    person within the split, when given) with uint8 images (3, H, W) decoded at ``size``.

    The DataLoader fetches a whole batch at a time (``__getitems__``, with
    ``collate_fn=pass_batch``): from the cache, when ``cache=True`` decoded every image once
    into one uint8 tensor (shared copy-on-write by loader workers), one indexing per batch;
    otherwise by decoding the batch's files (in the loader workers). Images declaring more
    than ``max_pixels`` pixels are refused undecoded (decompression bombs).
    """

    def __init__(
        self,
        paths: list[str],
        targets: np.ndarray | None,
        size: tuple[int, int],
        cache: bool = False,
        identities: np.ndarray | None = None,
        max_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.paths = list(paths)
        self.identities = None if identities is None else torch.as_tensor(identities).long()
        self.targets = None if targets is None else torch.as_tensor(targets, dtype=torch.float32)
        self.size = tuple(size)
        self.max_pixels = max_pixels
        self.images = read_images(self.paths, self.size, max_pixels=max_pixels) if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        if self.images is not None:
            images = self.images[index]
        else:
            decoded = [read_image(self.paths[i], self.size, self.max_pixels) for i in indices]
            images = torch.stack(decoded)
        batch = {"image": images, "index": index}
        if self.targets is not None:
            batch["target"] = self.targets[index]
        if self.identities is not None:
            batch["identity"] = self.identities[index]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def pass_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The collation of :class:`AttributeImageDataset` batches: they are batches already."""
    return batch
