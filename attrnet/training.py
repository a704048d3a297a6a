"""One training job as a ``train`` config describes it: data, model, trainer, fit, the best
checkpoint's validation, the test split's evaluation, the final logging, ``metrics.json`` and
the optional re-ID step.

The run folder receives ``split.csv`` (+ ``split.json`` for an identity split), the loggers'
files, checkpoints (best + last) and ``metrics.json`` with every final validation metric and,
when the data has test images, the best checkpoint's test metrics (also logged once as
``test/*``). ``attrnet-train`` composes the config, calls ``train`` and prints its result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from attrnet import config_checks
from attrnet.checkpoints import load_checkpoint
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from attrnet.evaluation import evaluate_attributes, final_scalars
from attrnet.io import atomic_write_text
from attrnet.models.loading import check_attribute_names, initialize_from
from attrnet.models.module import AttributeModule
from attrnet.models.spec import ModelSpec
from attrnet.optim import OptimizerPlan, announce_dropped_phases
from attrnet.retrieval.from_config import reid_metric_names, reid_options
from attrnet.retrieval.pipeline import run_reid
from attrnet.run_folder import claim_run_folder
from attrnet.tensorboard import (
    curated_hparams,
    final_metric_names,
    log_final_metrics,
    log_interval,
    log_run_overview,
    logging_step,
    register_hparams,
    training_layout,
)

SUMMARY_METRICS = (
    "mA",
    "instance_accuracy",
    "instance_precision",
    "instance_recall",
    "instance_f1",
    "macro_precision",
    "macro_recall",
    "macro_f1",
)


@dataclass
class TrainingResult:
    """What a training job ends with: the final validation ``metrics`` and, when the data has
    test images, the ``test`` metrics, both of the ``checkpoint`` (the best one; ``None``: the
    last weights); the re-ID step's per-distance results (``reid``) when it ran.
    ``is_global_zero``: this process is the one that writes and prints."""

    metrics: dict[str, float]
    test: dict[str, float] | None
    attributes: list[str]
    checkpoint: str | None
    output_dir: Path
    is_global_zero: bool
    reid: dict[str, dict[str, float]] | None = None


def _instantiate_dict(section: DictConfig | None) -> list[Any]:
    return [instantiate(item) for item in (section or {}).values() if item is not None]


def _check_ddp_launch(trainer: L.Trainer) -> None:
    """Refuse DDP that Lightning would start by relaunching the command line inside a local
    multirun: every process would run the whole sweep again."""
    if trainer.world_size == 1 or not HydraConfig.initialized():
        return
    relaunches = not trainer.strategy.cluster_environment.creates_processes_externally
    if relaunches and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ValueError(
            "trainer=ddp in a local multirun (-m): Lightning would relaunch the whole sweep "
            "in each process. Run DDP jobs one at a time, or sweep them with "
            "hydra/launcher=slurm (or torchrun) where the processes are started externally"
        )


def build_data_and_model(cfg: DictConfig) -> tuple[AttributeDataModule, AttributeModule]:
    """The datamodule (set up for fitting) and the model that ``cfg`` describes: its parts are
    built from their configs with what the training split tells (attribute names, positive
    ratios for the criterion's weights, identities for the identity head) and injected."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    for key in (k for k in ("ckpt_path", "init_from") if cfg.get(k)):
        check_attribute_names(cfg[key], datamodule.attributes, key)
    net = instantiate(cfg.model.net, num_attributes=len(datamodule.attributes), _convert_="all")
    criterion = instantiate(cfg.loss)(datamodule.positive_ratio)
    parts: dict[str, Any] = {}
    if cfg.model.get("identity") is not None:  # the head's sizes: the network's, the data's
        identities = datamodule.num_train_identities
        head = {"embedding_dim": net.embedding_dim, "num_identities": identities}
        sized = {"head": head} if cfg.model.identity.get("head") is not None else {}
        parts["identity"] = instantiate(cfg.model.identity, **sized, _convert_="all")
    spec = ModelSpec(
        tuple(datamodule.attributes), datamodule.image_size, IMAGENET_MEAN, IMAGENET_STD
    )
    phases = OmegaConf.to_container(cfg.optimizer.phases, resolve=True)
    announce_dropped_phases(phases)
    plan = OptimizerPlan(phases)
    parts.update(net=net, criterion=criterion, optimizer=plan, spec=spec)
    model = instantiate(cfg.model, **parts, _convert_="object")  # "object": spec stays a ModelSpec
    if model.identity is not None:
        datamodule.require_identified_training("identity losses (objective=apr or identity)")
    if cfg.get("init_from"):
        initialize_from(model, cfg.init_from)
    return datamodule, model


def train(cfg: DictConfig) -> TrainingResult:
    """Run one training job described by ``cfg``; returns its final metrics."""
    claim_run_folder(cfg)  # before anything is written: one run per folder
    if cfg.get("ckpt_path"):  # refuse a missing, corrupt or code-carrying checkpoint up front
        load_checkpoint(cfg.ckpt_path)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    datamodule, model = build_data_and_model(cfg)
    datamodule.save_split(output_dir)
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    loggers = _instantiate_dict(cfg.get("logger"))
    max_epochs = cfg.trainer.max_epochs or model.optimizer_plan.epochs
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, max_epochs=max_epochs
    )
    _check_ddp_launch(trainer)
    device, precision = trainer.strategy.root_device.type, str(trainer.precision)
    config_checks.cpu_bf16_image_size(device, precision, datamodule.image_size)
    steps_per_epoch = len(datamodule.train_dataloader()) // (
        trainer.world_size * trainer.accumulate_grad_batches
    )
    trainer.log_every_n_steps = log_interval(steps_per_epoch, trainer.log_every_n_steps)

    # optional re-ID evaluation of the best checkpoint; its options are checked before training
    reid_cfg = cfg.get("reid")
    if reid_cfg is not None:
        datamodule.tables.require_identities("the reid step")
    checkpoint = next(
        (c for c in trainer.callbacks if isinstance(c, ModelCheckpoint) and c.monitor), None
    )
    group = "best" if checkpoint is not None else "final"  # TensorBoard tags of the evaluation
    extra = [f"{group}/epoch", *(reid_metric_names(reid_cfg) if reid_cfg is not None else [])]
    groups = (group, "val", "test") if len(datamodule.test_frame) else (group, "val")
    metric_names = final_metric_names(groups, SUMMARY_METRICS, extra)
    register_hparams(trainer.loggers, curated_hparams(cfg), metric_names)
    log_run_overview(trainer.loggers, cfg, training_layout((*SUMMARY_METRICS, "loss")))
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)

    best = (checkpoint.best_model_path or None) if checkpoint is not None else None
    model.logs_validation = False  # logged below under best/*, not as one more val/* point
    trainer.validate(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
    metrics = dict(model.last_val_metrics)
    test = None
    if len(datamodule.test_frame):  # the held-out test images, scored once with the best weights
        # trainer.validate(ckpt_path=best) has just loaded them into the model: no second read;
        # the run's trainer predicts (its devices, DDP ranks and precision)
        test = evaluate_attributes(model, datamodule, datamodule.test_frame, trainer)
    last = (max(logging_step(trainer) - 1, 0), trainer.current_epoch - 1)
    step, epoch = model.checkpoint_position if best else last
    final = {f"{group}/{k}": v for k, v in metrics.items() if "/" not in k}
    attributes = datamodule.attributes
    result = TrainingResult(metrics, test, attributes, best, output_dir, trainer.is_global_zero)
    if trainer.is_global_zero:
        write_report(result)
    if reid_cfg is not None:
        if best is None:
            raise ValueError("reid: the re-ID step needs the best checkpoint (model_checkpoint)")
        # the best weights and the run's data are already here (trainer.validate(ckpt_path=best)
        # loaded them): no second read; re-ID batches as attrnet-reid's (reid.batch_size); the
        # run's trainer predicts: every DDP rank takes part, rank 0 writes
        datamodule.eval_batch_size = int(reid_cfg.batch_size)
        options = reid_options(reid_cfg)
        result.reid = run_reid(
            model, datamodule, options, output_dir, best, trainer, trainer.loggers, step
        )
    tested = {} if test is None else final_scalars(test, "test")
    log_final_metrics(trainer.loggers, step, final, tested, {f"{group}/epoch": epoch})
    return result


def summary(metrics: dict[str, float]) -> dict[str, float]:
    """The headline figures (``SUMMARY_METRICS``) of a full metrics dictionary."""
    return {name: metrics[name] for name in SUMMARY_METRICS}


def write_report(result: TrainingResult) -> None:
    """Write ``metrics.json`` (checkpoint, summary and all metrics, val and test) atomically."""
    payload: dict[str, Any] = {
        "checkpoint": result.checkpoint,
        "summary": summary(result.metrics),
        "metrics": result.metrics,
    }
    if result.test is not None:
        payload["test"] = {"summary": summary(result.test), "metrics": result.test}
    atomic_write_text(result.output_dir / "metrics.json", json.dumps(payload, indent=1))
