"""Image decoding: file -> resized uint8 tensor (3, H, W), with errors that name the file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from attrnet.data.decode import MAX_IMAGE_PIXELS, decode_rgb
from attrnet.data.errors import DataError

__all__ = ["MAX_IMAGE_PIXELS", "find_unreadable", "read_image", "read_images"]


def read_image(
    path: str | Path, size: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS
) -> torch.Tensor:
    """Decode ``path`` as RGB and resize to ``size`` = (height, width); uint8 (3, H, W).

    Images declaring more than ``max_pixels`` pixels are refused from their header, undecoded.
    """
    array = decode_rgb(path, size, max_pixels)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def read_images(
    paths: list[str],
    size: tuple[int, int],
    threads: int = 4,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> torch.Tensor:
    """Decode many images into one uint8 tensor (N, 3, H, W); decoding runs on threads."""
    out = torch.empty((len(paths), 3, *size), dtype=torch.uint8)

    def decode(index: int) -> None:
        out[index] = read_image(paths[index], size, max_pixels)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(decode, range(len(paths))))
    return out


def find_unreadable(
    paths: list[str],
    size: tuple[int, int],
    threads: int = 4,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> dict[str, str]:
    """Decode every image once; map each path that fails to its error message."""

    def check(path: str) -> str | None:
        try:
            read_image(path, size, max_pixels)
        except DataError as error:
            return str(error)
        return None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        errors = list(pool.map(check, paths))
    return {path: error for path, error in zip(paths, errors, strict=True) if error is not None}
