"""Image decoding: file -> resized uint8 tensor (3, H, W), with errors that name the file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from attrnet.data.errors import DataError

#: Default cap on an image's declared pixel count, checked before decoding. Pedestrian crops are
#: tiny (Market-1501: 128x64 = 8192 pixels) and even full 8K camera frames (33 MP) pass, while a
#: decompression bomb (a few KB declaring e.g. 100000x100000) is refused; at the cap one decoded
#: RGB image takes 150 MB, which a few DataLoader workers can afford.
MAX_IMAGE_PIXELS = 50_000_000


def read_image(
    path: str | Path, size: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS
) -> torch.Tensor:
    """Decode ``path`` as RGB and resize to ``size`` = (height, width); uint8 (3, H, W).

    Images declaring more than ``max_pixels`` pixels are refused from their header, undecoded.
    """
    height, width = size
    try:
        with Image.open(path) as image:
            declared_width, declared_height = image.size
            if declared_width * declared_height > max_pixels:
                raise DataError(
                    f"{path}: declared image size {declared_width}x{declared_height} "
                    f"({declared_width * declared_height} pixels) exceeds the limit of "
                    f"{max_pixels} pixels (data.max_image_pixels); refusing to decode it"
                )
            image = image.convert("RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist") from None
    except Image.DecompressionBombError as error:
        raise DataError(f"{path}: refusing a likely decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


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
