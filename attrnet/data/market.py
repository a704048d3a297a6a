"""Market-1501 folder scans: parse ``PPPP_cCsS_FFFFFF_BB.jpg`` names and list image folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from attrnet.data.decode import IMAGE_SUFFIXES
from attrnet.data.errors import DataError

MARKET_NAME = re.compile(
    r"^(?P<pid>-1|\d{4})_c(?P<cam>\d)s(?P<seq>\d)_(?P<frame>\d{6})_(?P<box>\d{2})\.jpg$"
)
JUNK_ID = -1
DISTRACTOR_ID = 0


@dataclass(frozen=True)
class MarketName:
    """The fields encoded in a Market-1501 image name."""

    person_id: int
    camera_id: int
    sequence: int
    frame: int
    box: int


def parse_market_name(name: str) -> MarketName:
    """Parse a Market-1501 file name; raise ``DataError`` naming it when it does not match."""
    match = MARKET_NAME.match(name)
    if match is None:
        raise DataError(
            f"{name}: not a Market-1501 image name, expected PPPP_cCsS_FFFFFF_BB.jpg "
            "(e.g. 0002_c1s1_000451_03.jpg; person id -1 for junk)"
        )
    camera = int(match["cam"])
    if not 1 <= camera <= 6:
        raise DataError(f"{name}: camera {camera} outside 1..6")
    return MarketName(
        int(match["pid"]), camera, int(match["seq"]), int(match["frame"]), int(match["box"])
    )


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files of ``folder``; a missing or empty folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder does not exist")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{folder}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def scan_market_folder(folder: str | Path, split: str) -> pd.DataFrame:
    """Table of a Market-named folder: path, image, person_id, camera_id, split."""
    rows = []
    for path in list_images(folder):
        try:
            name = parse_market_name(path.name)
        except DataError as error:
            raise DataError(f"{folder}/{error}") from None
        rows.append((str(path), path.name, name.person_id, name.camera_id, split))
    return pd.DataFrame(rows, columns=["path", "image", "person_id", "camera_id", "split"])


def scan_anonymous_folder(folder: str | Path, split: str) -> pd.DataFrame:
    """Table of unlabelled images with anonymous names (the course ``test/``, ``queries/``)."""
    rows = [(str(p), p.name, -1, -1, split) for p in list_images(folder)]
    return pd.DataFrame(rows, columns=["path", "image", "person_id", "camera_id", "split"])
