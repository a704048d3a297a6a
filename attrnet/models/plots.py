"""Figures for TensorBoard: per-attribute F1 bars and validation images with their attributes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402

#: Prediction grid layout in pixels: pictures are enlarged (nearest) to about this height, each
#: cell is at least GRID_TEXT_WIDTH wide and lists up to GRID_LINES attributes under its picture.
GRID_PICTURE_HEIGHT = 192
GRID_TEXT_WIDTH = 110
GRID_LINES = 16
GRID_LINE_HEIGHT = 12
GRID_GAP = 6
GRID_COLOURS = {
    "correct": (0, 128, 0),
    "wrong": (210, 0, 0),
    "missed": (230, 120, 0),
    "unknown": (128, 128, 128),
}
#: The legend line above the grid: what each colour means.
GRID_LEGEND = (
    ("predicted, true", "correct"),
    ("predicted, false", "wrong"),
    ("(true, missed)", "missed"),
    ("predicted?, label unknown", "unknown"),
)
GRID_LEGEND_HEIGHT = 16


def attribute_bar_chart(values: dict[str, float], title: str) -> Figure:
    """A horizontal bar per attribute (e.g. validation F1), sorted as given."""
    names = list(values)
    figure, axis = plt.subplots(figsize=(6, 0.22 * len(names) + 1.0))
    axis.barh(names, [values[n] for n in names], color="tab:blue")
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_title(title)
    axis.tick_params(axis="y", labelsize=7)
    figure.tight_layout()
    return figure


def prediction_grid(
    images: torch.Tensor,
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    attribute_names: list[str],
    threshold: float = 0.5,
    columns: int = 8,
) -> np.ndarray:
    """Validation images with their attributes as one uint8 HWC picture for TensorBoard.

    Under each image: the predicted positives (green if true, red if not, grey with a ``?``
    where the label is unknown, NaN) and the missed true ones in parentheses (orange); a legend
    line above the grid says so. Drawn with Pillow: a
    matplotlib figure of the same took about a second per validation epoch on two CPU cores.
    """
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    height, width = images.shape[-2:]
    scale = max(1, GRID_PICTURE_HEIGHT // height)
    cell_width = max(width * scale, GRID_TEXT_WIDTH) + GRID_GAP
    cell_height = height * scale + GRID_LINES * GRID_LINE_HEIGHT + GRID_GAP
    canvas = Image.new(
        "RGB", (columns * cell_width, GRID_LEGEND_HEIGHT + rows * cell_height), "white"
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    left = 2
    for text, kind in GRID_LEGEND:
        draw.text((left, 2), text, fill=GRID_COLOURS[kind], font=font)
        left += int(draw.textlength(text, font=font)) + 16
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for index in range(count):
        left = (index % columns) * cell_width
        top = GRID_LEGEND_HEIGHT + (index // columns) * cell_height
        picture = (images[index].float().cpu() * std + mean).clamp(0, 1).mul(255).round()
        picture = Image.fromarray(picture.byte().permute(1, 2, 0).numpy())
        canvas.paste(picture.resize((width * scale, height * scale), Image.NEAREST), (left, top))
        predicted = probabilities[index] >= threshold
        truth = targets[index] > 0.5
        unknown = targets[index].isnan()
        lines = []
        for j, name in enumerate(attribute_names):
            if predicted[j] and unknown[j]:
                lines.append((f"{name}?", GRID_COLOURS["unknown"]))
            elif predicted[j]:
                lines.append((name, GRID_COLOURS["correct"] if truth[j] else GRID_COLOURS["wrong"]))
            elif truth[j]:
                lines.append((f"({name})", GRID_COLOURS["missed"]))
        for k, (text, colour) in enumerate(lines[:GRID_LINES]):
            y = top + height * scale + 2 + k * GRID_LINE_HEIGHT
            draw.text((left + 2, y), text, fill=colour, font=font)
    return np.asarray(canvas)
