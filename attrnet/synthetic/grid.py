"""A PNG grid of synthetic identities across cameras, with their labels (README figure)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

from attrnet.attributes import AGE_BINS, AGE_FIELD, ANNOTATION_FIELDS, LOWER_COLOURS, UPPER_COLOURS
from attrnet.io import atomic_open
from attrnet.synthetic.identities import CARRY_FIELDS
from attrnet.synthetic.market import TRAIN_DIR


def describe(fields: Mapping[str, int]) -> list[str]:
    """Short human-readable attribute lines of one identity (for figures)."""
    age = AGE_BINS[int(fields[AGE_FIELD]) - 1]
    upper = next((c[2:] for c in UPPER_COLOURS if int(fields[c]) == 2), "multicolour")
    lower = next((c[4:] for c in LOWER_COLOURS if int(fields[c]) == 2), "multicolour")
    garment = "dress" if int(fields["clothes"]) == 1 else "pants"
    carried = [f for f in (*CARRY_FIELDS, "hat") if int(fields[f]) == 2]
    return [
        f"{'female' if int(fields['gender']) == 2 else 'male'}, {age}",
        f"{'long' if int(fields['hair']) == 2 else 'short'} hair",
        f"{upper} {'short' if int(fields['up']) == 2 else 'long'} sleeves",
        f"{lower} {'short' if int(fields['down']) == 2 else 'long'} {garment}",
        ", ".join(carried) if carried else "-",
    ]


def _diverse_ids(table: pd.DataFrame, count: int) -> list[int]:
    """Greedily pick identities that together show as many distinct attribute values as can."""
    values = {int(pid): {(f, int(row[f])) for f in ANNOTATION_FIELDS}
              for pid, row in table.iterrows()}
    seen: set[tuple[str, int]] = set()
    chosen: list[int] = []
    for _ in range(min(count, len(values))):
        best = max((p for p in values if p not in chosen), key=lambda p: len(values[p] - seen))
        chosen.append(best)
        seen |= values[best]
    return chosen


def _one_per_camera_first(files: list[Path], count: int) -> list[Path]:
    """Up to ``count`` files, one per camera before any second image of a camera."""
    firsts, rest, cameras = [], [], set()
    for file in files:
        camera = file.name.split("_")[1][:2]
        (rest if camera in cameras else firsts).append(file)
        cameras.add(camera)
    return (firsts + rest)[:count]


def _tile(file: Path, zoom: int) -> Image.Image:
    """One crop, enlarged ``zoom`` times without smoothing."""
    with Image.open(file) as crop:
        return crop.convert("RGB").resize((crop.width * zoom, crop.height * zoom),
                                          Image.NEAREST)


def save_sample_grid(root: Path | str, path: Path | str, n: int = 8, per_id: int = 6) -> Path:
    """Write a PNG grid: ``n`` train identities (rows), ``per_id`` images across cameras.

    Identities are picked to cover many attribute values; each row ends with its labels.
    """
    root, path = Path(root), Path(path)
    table = pd.read_csv(root / "annotations_train.csv").set_index("id")
    files = sorted((root / TRAIN_DIR).glob("*.jpg"))
    chosen = _diverse_ids(table, n)
    zoom, gap, text_width = 2, 2, 150
    tile_width, tile_height = _tile(files[0], zoom).size
    step_x, step_y = tile_width + gap, tile_height + gap
    grid = Image.new("RGB", (per_id * step_x + text_width, len(chosen) * step_y), "white")
    draw = ImageDraw.Draw(grid)
    for row, pid in enumerate(chosen):
        own = [f for f in files if int(f.name[:4]) == pid]
        for column, file in enumerate(_one_per_camera_first(own, per_id)):
            grid.paste(_tile(file, zoom), (column * step_x, row * step_y))
        lines = [f"id {pid:04d}", *describe(table.loc[pid].to_dict())]
        draw.multiline_text((per_id * step_x + 6, row * step_y + 8), "\n".join(lines),
                            fill="black", spacing=6)
    buffer = io.BytesIO()
    grid.save(buffer, format="PNG")
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path
