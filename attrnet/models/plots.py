"""Figures for TensorBoard: per-attribute F1 bars and validation images with their attributes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from attrnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402


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
) -> Figure:
    """Validation images with predicted attributes: green = correct positive, red = wrong.

    Under each image: the predicted positives (red if not true) and missed true ones (orange).
    """
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = plt.subplots(
        2 * rows,
        columns,
        figsize=(1.9 * columns, 5.0 * rows),
        squeeze=False,
        gridspec_kw={"height_ratios": [1.0, 1.1] * rows},
    )
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for index in range(rows * columns):
        picture_axis = axes[2 * (index // columns), index % columns]
        text_axis = axes[2 * (index // columns) + 1, index % columns]
        picture_axis.axis("off")
        text_axis.axis("off")
        if index >= count:
            continue
        picture = (images[index].float().cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
        picture_axis.imshow(picture)
        predicted = probabilities[index] >= threshold
        truth = targets[index] > 0.5
        lines = []
        for j, name in enumerate(attribute_names):
            if predicted[j]:
                lines.append((name, "green" if truth[j] else "red"))
            elif truth[j]:
                lines.append((f"({name})", "orange"))
        for k, (text, colour) in enumerate(lines[:16]):
            text_axis.text(
                0.0,
                1.0 - 0.062 * k,
                text,
                color=colour,
                fontsize=6,
                transform=text_axis.transAxes,
                va="top",
            )
    figure.subplots_adjust(hspace=0.05, wspace=0.1, top=0.99, bottom=0.01, left=0.02, right=0.98)
    return figure
