"""``attrnet-aggregate``: a multirun folder's runs as one markdown table and one PNG plot.

The library (``attrnet.aggregate``) reads the sweep's configuration and each run's
``metrics.json`` or ``reid_metrics.json`` and writes ``<name>.md`` and ``<name>.png``; this
command and ``AggregateCallback`` (registered by the experiment configs, so the table is written
when the sweep ends) print the table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from attrnet.aggregate import SOURCES, aggregate
from attrnet.cli.errors import reports_user_errors


def aggregate_and_print(
    folder: str | Path,
    output_dir: str | Path | None = None,
    source: str | None = None,
    metrics: Sequence[str] | None = None,
) -> None:
    """Aggregate the sweep in ``folder`` and print its table and the files written."""
    result = aggregate(folder, output_dir, source, metrics)
    print(result.text)
    print(f"Wrote {result.markdown_path} and {result.png_path}")


class AggregateCallback(Callback):
    """Hydra callback: aggregate the sweep when it ends (``aggregate.output_dir`` or the sweep)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        section = config.get("aggregate") or {}
        aggregate_and_print(config.hydra.sweep.dir, section.get("output_dir"))


@reports_user_errors
def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``attrnet-aggregate``."""
    parser = argparse.ArgumentParser(prog="attrnet-aggregate", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep", help="the multirun folder, e.g. logs/table1_attention/multiruns/<time>"
    )
    parser.add_argument(
        "--output-dir", help="where <name>.md and <name>.png go (default: the sweep)"
    )
    parser.add_argument(
        "--source", choices=sorted(SOURCES), help="metrics.json or reid_metrics.json"
    )
    parser.add_argument("--metrics", help="comma-separated metric columns, e.g. mA,macro_f1")
    args = parser.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    aggregate_and_print(args.sweep, args.output_dir, args.source, metrics)


if __name__ == "__main__":
    main()
