"""Image decoding: file -> resized uint8 tensor (3, H, W), with errors that name the file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from attrnet.data.errors import DataError


def read_image(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """Decode ``path`` as RGB and resize to ``size`` = (height, width); uint8 (3, H, W)."""
    height, width = size
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_images(paths: list[str], size: tuple[int, int], threads: int = 4) -> torch.Tensor:
    """Decode many images into one uint8 tensor (N, 3, H, W); decoding runs on threads."""
    out = torch.empty((len(paths), 3, *size), dtype=torch.uint8)

    def decode(index: int) -> None:
        out[index] = read_image(paths[index], size)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(decode, range(len(paths))))
    return out
