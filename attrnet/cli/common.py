"""Helpers shared by the Hydra entry points: config search path, checkpoint loading, tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict

from attrnet.models.loading import load_attribute_module

__all__ = ["CONFIG_PATH", "compose_run_config", "format_table", "load_attribute_module"]

#: Hydra finds the configs in the installed package (``attrnet.conf``, i.e. the repo's ``conf/``).
CONFIG_PATH = "pkg://attrnet.conf"


def compose_run_config(
    name: str,
    output_dir: str | Path,
    overrides: Sequence[str] | None = None,
    root_dir: str | Path | None = None,
) -> DictConfig:
    """``conf/<name>.yaml`` composed as its command would, for a run started from Python: the
    run folder is ``output_dir`` and the root ``root_dir`` (default: the run folder), which
    ``@hydra.main`` would otherwise resolve from its run directory and launch directory."""
    with initialize_config_module("attrnet.conf", version_base="1.3"):
        cfg = compose(name, overrides=list(overrides or []))
    with open_dict(cfg):
        cfg.paths.root_dir = str(root_dir if root_dir is not None else output_dir)
        cfg.paths.output_dir = str(output_dir)
    return cfg


def format_table(rows: dict[str, Any], digits: int = 4) -> str:
    """A two-column text table of metric name and value."""
    width = max(len(k) for k in rows)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 8}"]
    for key, value in rows.items():
        text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)
