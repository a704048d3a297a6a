"""``attrnet-data``: summarise a dataset (images, identities, positives per split); no training.

Prints the tables and writes ``dataset_summary.json`` into the run folder, e.g.
``attrnet-data data=peta data.source.root=/data/PETA``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from attrnet.cli.common import CONFIG_PATH
from attrnet.data.summary import dataset_summary, summary_tables, write_summary

log = logging.getLogger(__name__)


def summarize(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.data`` (images are not decoded), log its summary (console and data.log) and
    write the JSON."""
    datamodule = instantiate(cfg.data, cache_images=False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    summary = dataset_summary(datamodule)
    sizes, positives = summary_tables(summary)
    log.info(f"{len(summary['attributes'])} attributes\n\n{sizes.to_string()}")
    log.info(f"\nPositives per attribute:\n{positives.to_string()}")
    if summary["skipped"]:
        log.info("\nSkipped: " + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()))
    path = write_summary(Path(cfg.paths.output_dir) / "dataset_summary.json", summary)
    log.info(f"\nSummary: {path}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="dataset")
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-data``."""
    summarize(cfg)


if __name__ == "__main__":
    main()
