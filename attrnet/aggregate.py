"""A multirun folder's runs as one markdown table and one PNG plot (``attrnet-aggregate``).

Reads the sweep's configuration (``multirun.yaml``: the command and the experiment's
``aggregate`` section) and, per run folder, ``.hydra/overrides.yaml`` with ``metrics.json``
(attributes) or ``reid_metrics.json`` (one row per distance). Columns: the swept settings, the
run's total epochs, the chosen metrics.
Runs without results and runs the sweep never started are listed in a note under the table.
Experiment configs register ``attrnet.cli.aggregate.AggregateCallback`` so the table is written
when the sweep ends.
"""

from __future__ import annotations

import io
import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from attrnet.io import atomic_open, atomic_write_text  # noqa: E402

SOURCES = {"metrics": "metrics.json", "reid": "reid_metrics.json"}
DEFAULT_METRICS = {
    "metrics": ["mA", "macro_precision", "macro_recall", "macro_f1", "instance_f1"],
    "reid": ["rank1", "rank5", "mAP"],
}


@dataclass
class Spec:
    """What to tabulate: the title, the result file kind and the metric columns."""

    name: str
    title: str
    source: str
    metrics: list[str]


@dataclass
class Table:
    """The aggregated rows, the setting columns and notes (runs without results, best trial)."""

    frame: pd.DataFrame
    settings: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass
class Sweep:
    """A multirun folder: its run folders and the sweep's configuration.

    ``config`` is ``multirun.yaml`` (``recorded``: its overrides are the command line) or, for
    sweepers that write none (Optuna), the first run's ``config.yaml`` + ``hydra.yaml``.
    """

    folder: Path
    runs: list[Path]
    config: DictConfig
    recorded: bool

    @classmethod
    def load(cls, folder: str | Path) -> Sweep:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such multirun folder")
        runs = [p.parent.parent for p in folder.glob("*/.hydra/overrides.yaml")]
        runs.sort(
            key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)
        )
        if not runs:
            raise FileNotFoundError(f"{folder}: no run folders (<n>/.hydra/overrides.yaml) found")
        recorded = (folder / "multirun.yaml").is_file()
        if recorded:
            config = OmegaConf.load(folder / "multirun.yaml")
        else:
            hydra_dir = runs[0] / ".hydra"
            config = OmegaConf.merge(
                OmegaConf.load(hydra_dir / "config.yaml"), OmegaConf.load(hydra_dir / "hydra.yaml")
            )
        return cls(folder, runs, config, recorded)

    @property
    def swept(self) -> list[str]:
        """Keys the sweeper's ``params`` sweep (the experiment's grid or search space)."""
        return list(self.config.hydra.sweeper.get("params") or {})

    def command(self) -> str:
        """The ``attrnet-train -m ...`` command line (without a recording: less the swept keys)."""
        task = [str(o) for o in self.config.hydra.overrides.task]
        if not self.recorded:
            task = [o for o in task if o.split("=", 1)[0].lstrip("+~") not in self.swept]
        hydra = [str(o) for o in self.config.hydra.overrides.hydra]
        return shlex.join(["attrnet-train", "-m", *task, *hydra])

    def expected_jobs(self) -> int | None:
        """How many jobs the sweep launches: Optuna's ``n_trials`` or the grid's size."""
        sweeper = self.config.hydra.sweeper
        if "n_trials" in sweeper:
            return int(sweeper.n_trials)
        if not self.recorded:
            return None
        arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        arguments += [str(o) for o in self.config.hydra.overrides.task]
        sizes: dict[str, int] = {}  # later overrides of a key win, as in Hydra's basic sweeper
        for override in OverridesParser.create().parse_overrides(arguments):
            values = override.sweep_string_iterator() if override.is_sweep_override() else [""]
            sizes[override.get_key_element()] = len(list(values))
        return math.prod(sizes.values())


def read_spec(sweep: Sweep, source: str | None, metrics: Sequence[str] | None) -> Spec:
    """The sweep's ``aggregate`` section, overridden by the given flags."""
    section = sweep.config.get("aggregate") or {}
    kind = (
        source
        or section.get("source")
        or ("reid" if sweep.config.get("reid") is not None else "metrics")
    )
    if kind not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, got {kind!r}")
    chosen = list(metrics or section.get("metrics") or DEFAULT_METRICS[kind])
    name = str(sweep.config.get("task_name") or sweep.folder.name)
    return Spec(name, str(section.get("title") or name), kind, chosen)


def _overrides(run: Path) -> dict[str, str]:
    lines = OmegaConf.load(run / ".hydra" / "overrides.yaml")
    return dict(str(line).split("=", 1) for line in lines if "=" in str(line))


def _total_epochs(run: Path) -> int | None:
    """The run's epochs: ``trainer.max_epochs`` or the sum of its optimizer phases."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs")
    phases = OmegaConf.select(cfg, "optimizer.phases") or []
    return int(max_epochs or sum(int(p.epochs) for p in phases)) or None


def _result_rows(run: Path, spec: Spec) -> list[dict[str, Any]]:
    """One row per metrics.json, or one per distance of reid_metrics.json."""
    path = run / SOURCES[spec.source]
    payload = json.loads(path.read_text())
    if spec.source == "metrics":
        rows = [payload["summary"] | payload.get("metrics", {})]
    else:
        rows = [{"distance": d, **values} for d, values in payload["results"].items()]
    missing = sorted({m for m in spec.metrics for row in rows if m not in row})
    if missing:
        raise KeyError(f"{path}: no metric {', '.join(missing)} (choose with --metrics)")
    keep = ["distance", *spec.metrics]
    return [{k: row[k] for k in keep if k in row} for row in rows]


def _short(value: str) -> str:
    """Sampled floats (Optuna) with 4 significant digits; everything else unchanged."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.4g}"


def collect(sweep: Sweep, spec: Spec) -> Table:
    """All runs as rows: the swept settings (and any that differ), epochs, metrics."""
    overrides = {run: _overrides(run) for run in sweep.runs}
    keys = list(dict.fromkeys(k for o in overrides.values() for k in o))
    varying = {k for k in keys if len({o.get(k) for o in overrides.values()}) > 1}
    settings = [k for k in keys if k in varying or k in sweep.swept]
    rows, notes = [], []
    for run in sweep.runs:
        values = {k: _short(overrides[run].get(k, "")) for k in settings}
        base = {"run": run.name, **values, "epochs": _total_epochs(run)}
        result = run / SOURCES[spec.source]
        if result.is_file():
            rows.extend(base | row for row in _result_rows(run, spec))
            continue
        label = ", ".join(f"{k}={v}" for k, v in values.items()) or "no overrides"
        notes.append(f"run {run.name} ({label}): no {result.name}; the run failed or is unfinished")
        rows.append(base | {m: np.nan for m in spec.metrics})
    expected = sweep.expected_jobs()
    numbers = {int(r.name) for r in sweep.runs if r.name.isdigit()}
    absent = sorted(set(range(expected or 0)) - numbers)
    if absent:
        jobs = ", ".join(map(str, absent))
        notes.append(f"{len(absent)} of {expected} runs never started (job {jobs})")
    best = sweep.folder / "optimization_results.yaml"
    if best.is_file():
        result = OmegaConf.load(best)
        notes.append(f"Optuna best value {result.best_value:.4f} with {dict(result.best_params)}")
    columns = ["run", *settings, "epochs"] + (["distance"] if spec.source == "reid" else [])
    frame = pd.DataFrame(rows)[[*columns, *spec.metrics]]
    return Table(frame, settings, notes)


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _display(path: Path) -> str:
    """``path`` relative to the working directory when inside it (portable in committed files)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """GitHub markdown lines of ``frame``: numbers right-aligned, floats with 4 decimals."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("| " + " | ".join("---:" if n else "---" for n in numeric) + " |")
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return lines


def markdown(table: Table, spec: Spec, sweep: Sweep, command: bool = True) -> str:
    """The table as GitHub markdown, with the command that produced it and the notes."""
    lines = [f"# {spec.title}", ""]
    if command:
        lines += ["Command:", "", f"    {sweep.command()}", ""]
    lines += [f"Runs: `{_display(sweep.folder)}` ({len(sweep.runs)} run folders).", ""]
    lines += markdown_table(table.frame)
    if table.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def plot_png(table: Table, spec: Spec) -> bytes:
    """Grouped bars: one group per metric, one bar per run (and distance), legend below.

    Bars are labelled by their settings, or by run number where those are long (Optuna).
    """
    frame = table.frame
    labels_from = [*table.settings] + (["distance"] if spec.source == "reid" else [])
    labels = [", ".join(str(row[k]) for k in labels_from) for _, row in frame.iterrows()]
    if not all(labels) or max(map(len, labels)) > 40:
        labels = [f"run {run}" for run in frame["run"]]
    values = frame[spec.metrics].to_numpy(dtype=float)
    count = len(frame)
    figure, axis = plt.subplots(figsize=(1.5 + len(spec.metrics) * (0.5 + 0.2 * count), 4.0))
    positions = np.arange(len(spec.metrics))
    width = 0.8 / count
    for index, label in enumerate(labels):
        offset = (index - (count - 1) / 2) * width
        axis.bar(positions + offset, values[index], width, label=label)
    axis.set_xticks(positions, spec.metrics)
    axis.set_ylim(0, 1)
    axis.set_title(spec.title, fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    columns = max(1, min(count, 4))
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=columns)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


@dataclass
class Aggregation:
    """The files ``aggregate`` wrote and the table as ``attrnet-aggregate`` prints it."""

    markdown_path: Path
    png_path: Path
    text: str


def aggregate(
    folder: str | Path,
    output_dir: str | Path | None = None,
    source: str | None = None,
    metrics: Sequence[str] | None = None,
) -> Aggregation:
    """Write ``<output_dir>/<name>.md`` and ``.png`` (default folder: the sweep's) atomically."""
    sweep = Sweep.load(folder)
    spec = read_spec(sweep, source, metrics)
    table = collect(sweep, spec)
    if table.frame[spec.metrics].isna().all().all():
        raise RuntimeError(f"{sweep.folder}: no run has a {SOURCES[spec.source]}")
    target = Path(output_dir) if output_dir else sweep.folder
    md_path, png_path = target / f"{spec.name}.md", target / f"{spec.name}.png"
    atomic_write_text(md_path, markdown(table, spec, sweep))
    with atomic_open(png_path, "wb") as handle:
        handle.write(plot_png(table, spec))
    return Aggregation(md_path, png_path, markdown(table, spec, sweep, command=False))
