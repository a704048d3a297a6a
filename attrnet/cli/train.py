"""``attrnet-train``: compose the Hydra config, run the training job (``attrnet.training.train``:
fit, validate the best checkpoint, evaluate the test split, write ``metrics.json``, the optional
re-ID step) and print its metrics tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from attrnet.cli.common import CONFIG_PATH, format_table
from attrnet.cli.errors import reports_user_errors
from attrnet.cli.reid import print_results as print_reid_results
from attrnet.metrics import per_attribute_table
from attrnet.output_guard import resolved
from attrnet.run_folder import claim_run_folder
from attrnet.training import TrainingResult, summary, train

log = logging.getLogger(__name__)


class ClaimRunFolder(Callback):
    """Hydra callback (``conf/train.yaml``): ``claim_run_folder`` before Hydra writes its
    ``.hydra/`` files and its log into the folder of a single run (a multirun's jobs are checked
    by ``train``, after Hydra's files)."""

    @reports_user_errors
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = resolved(config.hydra.run.dir)
        task = OmegaConf.masked_copy(config, [key for key in config if key != "hydra"])
        with open_dict(task):
            task.paths.output_dir = str(folder)  # ${hydra:runtime.output_dir} is not set yet
        claim_run_folder(task, [folder / f"{config.hydra.job.name}.log"])


def print_report(result: TrainingResult) -> None:
    """Log (console and train.log) the metrics table (val, and test when the data has a test
    split), the per-attribute tables and the run folder."""
    best = result.checkpoint
    if result.test is None:
        table = format_table(summary(result.metrics))
    else:
        both = {"val": summary(result.metrics), "test": summary(result.test)}
        table = pd.DataFrame(both).rename_axis("metric").round(4).to_string()
    log.info("\nFinal metrics" + (f" ({Path(best).name})" if best else "") + f":\n{table}")
    for split, values in (("val", result.metrics), ("test", result.test)):
        if values is not None:
            table = per_attribute_table(values, result.attributes).round(4).to_string()
            log.info(f"\nPer attribute ({split}):\n{table}")
    log.info(f"\nRun folder: {result.output_dir}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
@reports_user_errors
def main(cfg: DictConfig) -> float:
    """Entry point of ``attrnet-train``; returns the optimized metric for sweepers."""
    result = train(cfg)
    if result.is_global_zero:
        print_report(result)
        if result.reid is not None:
            print_reid_results(result.reid, cfg.reid, result.output_dir)
    return result.metrics[cfg.optimized_metric.removeprefix("val/")]


if __name__ == "__main__":
    main()
