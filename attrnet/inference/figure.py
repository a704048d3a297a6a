"""The picture of predictions: each image with its top attributes and their probabilities.

Torch-free (matplotlib's object API, no pyplot state), so ONNX deployments can draw it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from attrnet.io import atomic_open

POSITIVE_COLOUR = "#1a7f37"
NEGATIVE_COLOUR = "#6e7781"
#: Panel layout in inches: picture width (its height follows the image's aspect ratio), the
#: title above it, one text line per attribute below it, and the margin around a panel.
PICTURE_WIDTH = 1.1
TITLE = 0.2
LINE = 0.14
MARGIN = 0.1


def predictions_figure(
    images: Sequence[np.ndarray],
    table: pd.DataFrame,
    threshold: float = 0.5,
    top_k: int = 5,
    columns: int = 8,
) -> Figure:
    """One panel per image (uint8 (3, H, W), rows of ``table`` in the same order): the file
    name, the image, and its ``top_k`` most probable attributes with their probabilities
    (green: at or above ``threshold``, i.e. predicted present)."""
    if len(images) != len(table):
        raise ValueError(f"{len(images)} images but {len(table)} table rows")
    count = len(images)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    height, width = np.asarray(images[0]).shape[1:]
    picture = (PICTURE_WIDTH, PICTURE_WIDTH * height / width)  # inches
    cell = (picture[0] + 2 * MARGIN, picture[1] + TITLE + LINE * top_k + 2 * MARGIN)
    size = (cell[0] * columns, cell[1] * rows)
    figure = Figure(figsize=size, dpi=100)
    for index, (name, probabilities) in enumerate(table.iterrows()):
        left = (index % columns) * cell[0] + MARGIN
        top = size[1] - (index // columns) * cell[1] - MARGIN
        bottom = top - TITLE - picture[1]
        axis = figure.add_axes(
            (left / size[0], bottom / size[1], picture[0] / size[0], picture[1] / size[1])
        )
        axis.imshow(np.asarray(images[index]).transpose(1, 2, 0))
        axis.set_axis_off()
        axis.set_title(Path(str(name)).name, fontsize=6)
        top_values = probabilities.astype(float).sort_values(ascending=False).head(top_k)
        for line, (attribute, value) in enumerate(top_values.items()):
            figure.text(
                left / size[0],
                (bottom - LINE * (line + 0.8)) / size[1],
                f"{attribute} {value:.2f}",
                fontsize=7,
                color=POSITIVE_COLOUR if value >= threshold else NEGATIVE_COLOUR,
            )
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Save ``figure`` as PNG atomically (no half-written file on a crash)."""
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return Path(path)
