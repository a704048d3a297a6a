"""Torch-free image decoding: file or PIL image -> RGB uint8 array (H, W, 3) at a given size.

The training pipeline (``attrnet.data.images``) and the inference API (``attrnet.inference``,
which must run without torch from an ONNX file) share it, so both resize the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from attrnet.data.errors import DataError

#: Default cap on an image's declared pixel count, checked before decoding. Pedestrian crops are
#: tiny (Market-1501: 128x64 = 8192 pixels) and even full 8K camera frames (33 MP) pass, while a
#: decompression bomb (a few KB declaring e.g. 100000x100000) is refused; at the cap one decoded
#: RGB image takes 150 MB, which a few DataLoader workers can afford.
MAX_IMAGE_PIXELS = 50_000_000


def fit_rgb(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``image`` as RGB, resized (bilinear) to ``size`` = (height, width); uint8 (H, W, 3)."""
    height, width = size
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_rgb(
    path: str | Path, size: tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Decode ``path`` as RGB resized to ``size`` = (height, width); uint8 (H, W, 3).

    Images declaring more than ``max_pixels`` pixels are refused from their header, undecoded.
    """
    try:
        with Image.open(path) as image:
            declared_width, declared_height = image.size
            if declared_width * declared_height > max_pixels:
                raise DataError(
                    f"{path}: declared image size {declared_width}x{declared_height} "
                    f"({declared_width * declared_height} pixels) exceeds the limit of "
                    f"{max_pixels} pixels (data.max_image_pixels); refusing to decode it"
                )
            return fit_rgb(image, size)
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist") from None
    except Image.DecompressionBombError as error:
        raise DataError(f"{path}: refusing a likely decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None
