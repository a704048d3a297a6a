"""``attrnet-data``: summarise a dataset (images, identities, positives and unknown labels per
split); no training.

Prints the tables, the attributes without a positive or a negative in a split and the image
files that do not exist, and writes ``dataset_summary.json`` into the run folder, e.g.
``attrnet-data data=peta data.source.root=/data/PETA``. Missing files are reported here (exit
status 0); training refuses them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from attrnet.cli.common import CONFIG_PATH
from attrnet.cli.errors import reports_user_errors
from attrnet.data.checks import single_class_message, some_names
from attrnet.data.splits import ATTRIBUTE_SPLITS
from attrnet.data.summary import dataset_summary, summary_tables, write_summary

log = logging.getLogger(__name__)


def summarize(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.data`` and assign its images to splits (images are not decoded, unless
    ``data.skip_bad_images``), log its summary (console and data.log) and write the JSON."""
    datamodule = instantiate(cfg.data, cache_images=False)
    datamodule.prepare_data()
    datamodule.assign_splits()
    summary = dataset_summary(datamodule)
    sizes, positives, unknown = summary_tables(summary)
    labelled = sum(summary["splits"].get(name, {}).get("images", 0) for name in ATTRIBUTE_SPLITS)
    count = len(summary["attributes"])
    log.info(f"{labelled} images in train/val/test, {count} attributes\n\n{sizes.to_string()}")
    log.info(f"\nPositives per attribute:\n{positives.to_string()}")
    if len(unknown):
        cells = int(unknown.to_numpy().sum())
        log.info(f"\nUnknown labels per attribute ({cells} cells):\n{unknown.to_string()}")
    flagged = single_class_message(summary["single_class"])
    if flagged:
        log.info(f"\nWarning: {flagged}")
    for split, missing in summary["missing_images"].items():
        log.info(
            f"\nMissing image files ({split}): {missing['count']} do not exist: "
            + some_names(datamodule.missing_images[split])
        )
    if summary["skipped"]:
        log.info("\nSkipped: " + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()))
    path = write_summary(Path(cfg.paths.output_dir) / "dataset_summary.json", summary)
    log.info(f"\nSummary: {path}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="dataset")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-data``."""
    summarize(cfg)


if __name__ == "__main__":
    main()
