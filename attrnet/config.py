"""A run's Hydra config composed from Python as its console script would compose it.

Experiments, benchmarks and tests start runs without ``@hydra.main``; :func:`compose_run_config`
gives them the same config as ``attrnet-<name>`` with the same overrides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict


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
