"""Config values checked where they are read: a wrong one is refused naming its key."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any


def _shown(value: Any) -> str:
    """The value as the user wrote it (a Hydra list shows as a list)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return str(list(value))
    return repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value: Any, key: str) -> int:
    """``value`` if it is an integer > 0; else ``ValueError`` naming ``key``."""
    if not (_is_int(value) and value > 0):
        raise ValueError(f"{key} must be a positive integer, got {_shown(value)}")
    return int(value)


def non_negative_int(value: Any, key: str) -> int:
    """``value`` if it is an integer >= 0; else ``ValueError`` naming ``key``."""
    if not (_is_int(value) and value >= 0):
        raise ValueError(f"{key} must be an integer >= 0, got {_shown(value)}")
    return int(value)


def image_size(value: Any, key: str) -> tuple[int, int]:
    """``value`` as (height, width) if it is two positive integers; else ``ValueError``."""
    pair = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
    if not (pair and all(_is_int(v) and v > 0 for v in value)):
        raise ValueError(
            f"{key} must be two positive integers (height, width), got {_shown(value)}"
        )
    return int(value[0]), int(value[1])
