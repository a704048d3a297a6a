"""Ranked-list pictures: the query, then its top-k gallery images framed green (match) or red.

:func:`draw_ranked_list` returns a PIL image, so the same picture can be saved as PNG or sent
to TensorBoard (``torchvision.transforms.functional.pil_to_tensor``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from attrnet.io import atomic_open

ImageSource = str | os.PathLike | Image.Image

MATCH_COLOUR = (40, 170, 60)
MISS_COLOUR = (210, 40, 40)
QUERY_COLOUR = (90, 90, 90)
BACKGROUND = (255, 255, 255)


def _load_rgb(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    with Image.open(source) as opened:
        return opened.convert("RGB")


def _tile(source: ImageSource, size: tuple[int, int], colour: tuple, border: int) -> Image.Image:
    inner = (size[0] - 2 * border, size[1] - 2 * border)
    image = ImageOps.pad(_load_rgb(source), inner, color=BACKGROUND)
    return ImageOps.expand(image, border=border, fill=colour)


def draw_ranked_list(
    query_path: ImageSource,
    gallery_paths: Sequence[ImageSource],
    matches: Sequence[bool],
    k: int = 10,
    tile_size: tuple[int, int] = (64, 128),
    border: int = 4,
    gap: int = 4,
) -> Image.Image:
    """One row: the query (grey frame), a wider gap, then the first ``k`` gallery images.

    ``gallery_paths`` is the ranked list (paths or PIL images), best first; ``matches[i]``
    tells whether ``gallery_paths[i]`` shows the query's identity (green frame) or not (red frame).
    ``tile_size`` is (width, height) of every framed tile; images keep their aspect ratio.
    """
    if k < 1 or min(tile_size) <= 2 * border:
        raise ValueError("k must be >= 1 and tiles larger than their borders")
    shown = list(zip(gallery_paths[:k], matches[:k], strict=False))
    if len(shown) < min(k, len(gallery_paths)):
        raise ValueError(f"need a match flag for each of the first {k} gallery images")
    width, height = tile_size
    canvas = Image.new(
        "RGB", (width * (len(shown) + 1) + gap * (len(shown) + 2), height), BACKGROUND
    )
    canvas.paste(_tile(query_path, tile_size, QUERY_COLOUR, border), (0, 0))
    x = width + 3 * gap
    for source, is_match in shown:
        colour = MATCH_COLOUR if is_match else MISS_COLOUR
        canvas.paste(_tile(source, tile_size, colour, border), (x, 0))
        x += width + gap
    return canvas


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save ``image`` as PNG atomically (no half-written file on a crash)."""
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG")
    return Path(path)


def save_ranked_lists(
    images: Sequence[Image.Image], out_dir: str | os.PathLike, prefix: str = "ranked"
) -> list[Path]:
    """Save several ranked-list pictures as ``{prefix}_000.png``, ... in ``out_dir``."""
    return [
        save_png(image, Path(out_dir) / f"{prefix}_{i:03d}.png") for i, image in enumerate(images)
    ]
