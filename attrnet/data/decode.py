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


#: The suffixes of image files that folder scans (PETA, Market-1501, ``attrnet-predict``) read.
IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
#: PIL modes with 8 bits per channel, which convert to RGB without losing their meaning (a
#: palette is expanded, an alpha channel dropped).
EIGHT_BIT_MODES = ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1")
#: 16-bit grayscale modes (16-bit PNG and TIFF), scaled to 8 bits by 255 / 65535.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def check_mode(image: Image.Image, where: str) -> None:
    """Refuse an image ``to_rgb`` cannot convert, naming ``where`` (a path or an argument)."""
    if image.mode not in (*EIGHT_BIT_MODES, *SIXTEEN_BIT_MODES):
        raise DataError(
            f"{where}: image of mode {image.mode!r}; expected an 8-bit image (RGB, grayscale, "
            "palette) or 16-bit grayscale (32-bit integer and float images have no fixed range "
            "to map to 0..255: convert it to 8 bits first)"
        )


def to_rgb(image: Image.Image, where: str) -> Image.Image:
    """``image`` as 8-bit RGB; ``check_mode`` refuses what has no defined conversion.

    8-bit modes convert as PIL does; 16-bit grayscale is scaled to 0..255 (PIL's own conversion
    clips it, so a 16-bit image would come out white). 32-bit integer and float images ("I",
    "F") have no fixed range to scale from and are refused, as are other modes.
    """
    check_mode(image, where)
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.uint32)
        gray = (values * 255 + 32767) // 65535  # rounded
        return Image.fromarray(gray.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def fit_rgb(image: Image.Image, size: tuple[int, int], where: str) -> np.ndarray:
    """``image`` as RGB (``to_rgb``), resized (bilinear) to ``size`` = (height, width); uint8
    (H, W, 3). ``where`` names the image in errors."""
    height, width = size
    image = to_rgb(image, where)
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
            return fit_rgb(image, size, str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist") from None
    except Image.DecompressionBombError as error:
        raise DataError(f"{path}: refusing a likely decompression bomb ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"{path}: unreadable or truncated image ({error})") from None
