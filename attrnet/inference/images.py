"""Image inputs of the API: paths, PIL images, uint8 arrays or tensors, one or many.

:func:`image_inputs` checks them and returns an :class:`ImageInputs`, an indexable sequence
that decodes lazily (files are read when a batch needs them) and yields uint8 RGB arrays
(3, H, W) at the model's input size. Torch-free: tensors are recognised by duck typing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from attrnet.data.decode import check_mode, decode_rgb, fit_rgb
from attrnet.data.errors import DataError


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _is_single(value: Any) -> bool:
    if isinstance(value, str | os.PathLike | Image.Image):
        return True
    if isinstance(value, np.ndarray) or _is_tensor(value):
        return value.ndim == 3
    return False


class ImageInputs(Sequence):
    """Checked image inputs: ``inputs[i]`` is a uint8 (3, H, W) array, ``names[i]`` its label
    (the path as given, or ``[i]`` for an in-memory image)."""

    def __init__(self, items: list[Any], size: tuple[int, int], argument: str) -> None:
        self.size = size
        self.argument = argument
        self.items = [self._check(item, index) for index, item in enumerate(items)]
        self.names = [
            str(item) if isinstance(item, str | os.PathLike) else f"[{index}]"
            for index, item in enumerate(items)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        item = self.items[index]
        if isinstance(item, np.ndarray):
            return item
        if isinstance(item, Image.Image):
            rgb = fit_rgb(item, self.size, f"{self.argument}[{index}]")
        else:
            rgb = decode_rgb(item, self.size)
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))

    def _check(self, item: Any, index: int) -> Any:
        """Paths and PIL images are kept (decoded and resized later); arrays are checked now."""
        where = f"{self.argument}[{index}]"
        if isinstance(item, str | os.PathLike):
            return Path(item)
        if isinstance(item, Image.Image):
            check_mode(item, where)  # refused now, with the message a file would get
            return item
        if _is_tensor(item):
            item = item.detach().cpu().numpy()
        if not isinstance(item, np.ndarray):
            raise DataError(
                f"{where}: got a {type(item).__name__}; expected a path, a PIL image, or a uint8 "
                "array / tensor"
            )
        return self._check_array(item, where)

    def _check_array(self, array: np.ndarray, where: str) -> np.ndarray:
        height, width = self.size
        if array.dtype != np.uint8:
            raise DataError(
                f"{where}: array of dtype {array.dtype}; expected uint8 RGB values 0..255"
            )
        if array.shape == (3, height, width):
            return np.ascontiguousarray(array)
        if array.shape == (height, width, 3):
            return np.ascontiguousarray(array.transpose(2, 0, 1))
        raise DataError(
            f"{where}: array of shape {tuple(array.shape)}; expected an RGB image at the "
            f"model's input size, (3, {height}, {width}) or ({height}, {width}, 3) (pass a path "
            "or a PIL image to have it resized)"
        )


def image_inputs(images: Any, size: tuple[int, int], argument: str = "images") -> ImageInputs:
    """Check ``images`` (one image or a sequence / batch of them) against the input ``size``.

    One image: a path, a PIL image, or a uint8 array / tensor (3, H, W) or (H, W, 3). Many: a
    list of those, or a uint8 array / tensor (N, 3, H, W) or (N, H, W, 3). Errors are
    ``DataError`` naming ``argument`` and the position of the bad image.
    """
    if _is_single(images):
        items = [images]
    elif isinstance(images, np.ndarray) or _is_tensor(images):
        if images.ndim != 4:
            raise DataError(
                f"{argument}: array of shape {tuple(images.shape)}; expected one image (3 "
                "dimensions) or a batch (4 dimensions)"
            )
        items = list(images)
    elif isinstance(images, Sequence):
        items = list(images)
    else:
        raise DataError(
            f"{argument}: got a {type(images).__name__}; expected an image or a sequence of images"
        )
    if not items:
        raise DataError(f"{argument}: no images given")
    return ImageInputs(items, size, argument)
