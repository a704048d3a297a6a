"""Helpers shared by the Hydra entry points: config search path, checkpoint loading, tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attrnet.checkpoints import load_checkpoint
from attrnet.models.module import AttributeModule

#: Hydra finds the configs in the installed package (``attrnet.conf``, i.e. the repo's ``conf/``).
CONFIG_PATH = "pkg://attrnet.conf"


def load_attribute_module(checkpoint: str | Path, map_location: str = "cpu") -> AttributeModule:
    """Load a trained ``AttributeModule`` safely (``weights_only=True``; no ImageNet reload).

    The file is read by ``attrnet.checkpoints.load_checkpoint`` first, so a missing, corrupt or
    code-carrying checkpoint fails with a ``CheckpointError`` naming it; Lightning then builds
    the module from it.
    """
    path = Path(checkpoint)
    load_checkpoint(path, map_location="cpu")
    return AttributeModule.load_from_checkpoint(
        path, map_location=map_location, weights_only=True, pretrained=False, compile=False
    )


def format_table(rows: dict[str, Any], digits: int = 4) -> str:
    """A two-column text table of metric name and value."""
    width = max(len(k) for k in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 8}"]
    for key, value in rows.items():
        text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
