"""``attrnet-reid``: re-ID evaluation (study validation, Market-1501) and test-mode result lists.

Composes the config and calls the library (``attrnet.retrieval.from_config.evaluate``), which
loads the checkpoint and its data and runs the re-ID pipeline: it writes ``reid_metrics.json``,
ranked-list pictures and in test mode ``reid_test.txt`` into the run folder, and logs
``reid/<distance>/*`` scalars and the pictures at the checkpoint's step to the configured loggers
as an HParams session of its own. Rank 0 prints the results.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pandas as pd
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from attrnet.cli.common import CONFIG_PATH
from attrnet.cli.errors import reports_user_errors
from attrnet.retrieval.from_config import evaluate

log = logging.getLogger(__name__)


@rank_zero_only
def print_results(results: dict[str, dict[str, float]], cfg: DictConfig, output_dir: Path) -> None:
    """Log the re-ID figures of a run with ``cfg``'s options (console and the run's log)."""
    if cfg.mode == "test":
        figures = results[cfg.distances[0]]
        log.info(
            f"Threshold {figures['threshold']:.4f} (validation mean F1 "
            f"{figures['val_mean_f1']:.4f}); lists of at most {figures['max_list_length']} "
            f"images (mean {figures['mean_list_length']:.1f}) -> {output_dir / 'reid_test.txt'}"
        )
    else:
        table = pd.DataFrame(results).T
        table = table[[c for c in ("rank1", "rank5", "rank10", "mAP", "mINP") if c in table]]
        table.index.name = "distance"
        extra = ", re-ranked" if cfg.rerank else ""
        header = f"Re-ID ({cfg.mode} protocol, {cfg.features} features{extra}):"
        log.info(f"\n{header}\n{table.round(4).to_string()}")
    log.info(f"Run folder: {output_dir}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="reid")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-reid``."""
    print_results(evaluate(cfg), cfg, Path(cfg.paths.output_dir))


if __name__ == "__main__":
    main()
