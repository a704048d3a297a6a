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


#: The smallest image side CPU bf16 training accepts: below it ResNet50's stride-2 3x3
#: convolutions see 1-pixel-wide maps, where oneDNN 3.12's CPU bf16 kernels (torch 2.14) leave
#: weight-gradient taps unwritten (garbage, NaN losses on AMX CPUs).
CPU_BF16_MIN_SIDE = 32


def cpu_bf16_image_size(device_type: str, precision: str, image_size: Sequence[int]) -> None:
    """Refuse CPU bf16 training on images with a side under ``CPU_BF16_MIN_SIDE`` pixels."""
    if device_type == "cpu" and "bf16" in precision and min(image_size) < CPU_BF16_MIN_SIDE:
        raise ValueError(
            f"trainer.precision={precision} on the CPU needs data.image_size of at least "
            f"{CPU_BF16_MIN_SIDE} px per side, got {list(image_size)}: oneDNN's CPU bf16 "
            "convolutions compute wrong gradients on the 1-pixel-wide maps smaller images give; "
            f"use images of {CPU_BF16_MIN_SIDE} px or more, or trainer.precision=32-true"
        )
