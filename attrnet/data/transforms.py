"""Augmentations on resized uint8 image tensors: flip, pad-crop, normalize, random erasing."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def eval_transform() -> v2.Transform:
    """uint8 (3, H, W) -> normalised float32, no randomness."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def train_transform(
    size: tuple[int, int], flip: float = 0.5, pad: int = 10, erasing: float = 0.5
) -> v2.Transform:
    """The re-ID standard training augmentation on an image already resized to ``size``."""
    steps: list[v2.Transform] = []
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(flip))
    if pad > 0:
        steps += [v2.Pad(pad), v2.RandomCrop(size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if erasing > 0:
        steps.append(v2.RandomErasing(erasing, value=0))
    return v2.Compose(steps)
