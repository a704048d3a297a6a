"""``attrnet-data``: summarise a dataset (images, identities, positives per split); no training.

Prints the tables and writes ``dataset_summary.json`` into the run folder, e.g.
``attrnet-data data=peta data.source.root=/data/PETA``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from attrnet.cli.common import CONFIG_PATH
from attrnet.cli.errors import reports_user_errors
from attrnet.data.summary import dataset_summary, summary_tables, write_summary


def summarize(cfg: DictConfig) -> dict[str, Any]:
    """Load ``cfg.data`` (images are not decoded), print its summary and write the JSON."""
    datamodule = instantiate(cfg.data, cache_images=False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    summary = dataset_summary(datamodule)
    sizes, positives = summary_tables(summary)
    print(f"{len(summary['attributes'])} attributes\n")
    print(sizes.to_string())
    print("\nPositives per attribute:")
    print(positives.to_string())
    if summary["skipped"]:
        print("\nSkipped: " + ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()))
    path = write_summary(Path(cfg.paths.output_dir) / "dataset_summary.json", summary)
    print(f"\nSummary: {path}")
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="dataset")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-data``."""
    summarize(cfg)


if __name__ == "__main__":
    main()
