"""TensorBoard views of a run that read right: curated HParams, final metrics, layout, config text.

Only values that happened are logged. The HParams session is registered without metric points
(TensorBoard reads each metric's latest scalar), and final evaluations (the best checkpoint,
a test split, re-ID) are scalars under their own tags (``best/*``, ``test/*``, ``reid/*``) at
the step of the weights they describe, never extra points of the ``val/*`` curves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

#: The metrics the HParams tab shows first, in this order.
HEADLINE_METRICS = ("mA", "macro_f1", "instance_f1")
#: The per-attribute metrics the module logs as ``val_attr/<metric>/<attribute>``.
ATTRIBUTE_METRICS = ("f1", "mA", "precision", "recall", "accuracy")


def _add_summaries(writer: SummaryWriter, *summaries: Any) -> None:
    """Write raw summaries; the file writer reopens if Lightning closed it at the end of fit."""
    file_writer = writer._get_file_writer()
    for summary in summaries:
        file_writer.add_summary(summary)


def summary_writers(loggers: Iterable[Logger]) -> list[SummaryWriter]:
    """The SummaryWriters of the TensorBoard loggers, on the rank that writes (rank 0)."""
    if rank_zero_only.rank != 0:
        return []
    return [lg.experiment for lg in loggers if isinstance(lg, TensorBoardLogger)]


def logging_step(trainer: Trainer) -> int:
    """The step Lightning logs scalars at right now (what its own LearningRateMonitor uses):
    the number of optimizer steps before the current batch, so a validation at the end of an
    epoch of 3 steps is logged at step 2. Images and text use it to share the scalars' axis."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def _number(value: float) -> str:
    return f"{value:g}"


def optimizer_plan(phases: Sequence[Mapping[str, Any]]) -> str:
    """The optimizer plan in one line, e.g. ``adamw 8 ep lr 0.0015 -> sgd 1 ep lr 0.001``."""
    return " -> ".join(
        f"{p.get('name', p['optimizer'])} {p['epochs']} ep lr {_number(p['lr'])}" for p in phases
    )


def _objective(model: Mapping[str, Any]) -> str:
    """The loss terms with their weights, e.g. ``attributes`` or ``1 attributes + 1 id``."""
    identity = model.get("identity") or {}
    terms = {
        "attributes": identity.get("attribute_weight", 1.0),
        "id": identity.get("id_weight", 0.0),
        "triplet": identity.get("triplet_weight", 0.0),
    }
    used = {name: weight for name, weight in terms.items() if weight > 0}
    if list(used) == ["attributes"] and used["attributes"] == 1:
        return "attributes"
    return " + ".join(f"{_number(w)} {name}" for name, w in used.items())


def _dataset(source: Mapping[str, Any]) -> str:
    """The data source kind and the file or folder it reads, e.g. ``generic_csv peta.csv``."""
    kind = str(source.get("_target_", "")).rsplit(".", 1)[-1].removesuffix("Source")
    kind = {"GenericCsv": "generic_csv", "Market": "market1501"}.get(kind, kind.lower())
    where = source.get("csv") or source.get("root")
    return f"{kind} {Path(str(where)).name}" if where else kind


def curated_hparams(cfg: DictConfig | Mapping[str, Any]) -> dict[str, str | int | float]:
    """The settings that tell training runs apart, with readable values, for the HParams tab.

    The tab first shows five columns in name order: dataset, loss, model, objective and
    optimizer (the plan); the input resolution, batch, seed and each phase's learning rate and
    weight decay (numbers, for the parallel-coordinates view of a sweep) follow.
    """
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    model, data, trainer = plain["model"], plain["data"], plain.get("trainer", {})
    phases = plain["optimizer"]["phases"]
    net = model.get("net") or {}
    name = "resnet50+attention" if net.get("attention") else "resnet50"
    values: dict[str, str | int | float] = {
        "dataset": _dataset(data.get("source") or {}),
        "loss": str(plain["loss"]["strategy"]),
        "model": name + (" pretrained" if net.get("pretrained") else ""),
        "objective": _objective(model),
        "optimizer": optimizer_plan(phases),
        "resolution": "x".join(str(s) for s in data["image_size"]),
        "seed": int(plain["seed"]),
        "train_batch_size": int(data["batch_size"])
        * int(trainer.get("accumulate_grad_batches") or 1),
        "train_epochs": int(trainer.get("max_epochs") or sum(int(p["epochs"]) for p in phases)),
    }
    for index, phase in enumerate(phases, start=1):
        values[f"phase{index}_lr"] = float(phase["lr"])
        values[f"phase{index}_weight_decay"] = float(phase.get("weight_decay", 0.0))
    return values


def final_metric_names(
    groups: Iterable[str], names: Iterable[str], extra: Iterable[str] = ()
) -> list[str]:
    """HParams metric columns: each name under each group, name by name with the headline
    (``HEADLINE_METRICS``) first, so the tab's first five columns are ``best/mA``, ``val/mA``,
    ``best/macro_f1``, ``val/macro_f1``, ``best/instance_f1``; then ``extra`` tags."""
    groups, names = list(groups), list(names)
    ordered = [n for n in HEADLINE_METRICS if n in names] + [
        n for n in names if n not in HEADLINE_METRICS
    ]
    return [f"{group}/{name}" for name in ordered for group in groups] + list(extra)


def register_hparams(
    loggers: Iterable[Logger], values: Mapping[str, Any], metric_names: Sequence[str]
) -> None:
    """Register the run's HParams session and its metric columns without writing any point.

    ``metric_names`` are scalar tags the run logs (``val/*`` during training, ``best/*``,
    ``test/*`` or ``reid/*`` at the end); the HParams tab shows each one's latest value.
    """
    experiment, session_start, _ = hparams_summaries(dict(values), dict.fromkeys(metric_names, 0))
    for writer in summary_writers(loggers):
        _add_summaries(writer, experiment, session_start)


def log_final_metrics(
    loggers: Iterable[Logger], step: int, *metric_groups: Mapping[str, float]
) -> None:
    """Log final evaluations (dicts of ``<group>/<name>`` -> value, e.g. ``best/mA``,
    ``test/mA``) at ``step`` to every logger and close the HParams session as successful."""
    merged = {k: float(v) for group in metric_groups for k, v in group.items()}
    for logger in loggers:
        logger.log_metrics(merged, step=step)
        logger.save()
    _, _, session_end = hparams_summaries({}, {})
    for writer in summary_writers(loggers):
        _add_summaries(writer, session_end)
        writer.flush()


#: A Custom Scalars layout: {category: {chart title: ["Multiline", [tag regexes]]}}.
Layout = dict[str, dict[str, list[Any]]]


def training_layout(
    headline: Sequence[str], attribute_metrics: Sequence[str] = ATTRIBUTE_METRICS
) -> Layout:
    """The Custom Scalars tab: headline metrics with their best-checkpoint point, the learning
    rate beside the optimizer phase, and one chart per attribute metric with every attribute."""
    return {
        "validation (and the best checkpoint)": {
            name: ["Multiline", [rf"^(val|best)/{name}$"]] for name in headline
        },
        "optimizer": {
            "learning rate": ["Multiline", [r"^train/lr"]],
            "optimizer phase": ["Multiline", [r"^train/optimizer_phase$"]],
        },
        "attributes: one chart per metric, every attribute": {
            f"val {metric} per attribute": ["Multiline", [rf"^val_attr/{metric}/"]]
            for metric in attribute_metrics
        },
    }


def log_run_overview(
    loggers: Iterable[Logger], config: DictConfig | None, layout: Layout | None
) -> None:
    """The composed config in the Text tab (step 0) and the Custom Scalars layout."""
    for writer in summary_writers(loggers):
        if config is not None:
            text = OmegaConf.to_yaml(config, resolve=True)
            writer.add_text("config", "    " + text.replace("\n", "\n    "), global_step=0)
        if layout is not None:
            writer.add_custom_scalars(layout)


def log_interval(steps_per_epoch: int, configured: int, points_per_epoch: int = 4) -> int:
    """A training-logging interval that gives short epochs several points each: the
    configured one, or less when an epoch has fewer than ``points_per_epoch`` intervals."""
    return max(1, min(configured, steps_per_epoch // points_per_epoch))


def curated_reid_hparams(cfg: DictConfig | Mapping[str, Any]) -> dict[str, str | int | float]:
    """The settings of an ``attrnet-reid`` run for the HParams tab, with readable values."""
    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    checkpoint = Path(str(plain["ckpt_path"]))
    return {
        "checkpoint": f"{checkpoint.parent.parent.name}/{checkpoint.name}",
        "dataset": _dataset(plain["data"].get("source") or {}),
        "distances": ", ".join(plain["distances"]),
        "features": str(plain["features"]) + (" + flip" if plain.get("flip") else ""),
        "mode": str(plain["mode"]),
        "rerank": "k-reciprocal" if plain.get("rerank") else "none",
    }
