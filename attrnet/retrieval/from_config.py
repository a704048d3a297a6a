"""Re-ID evaluation from an ``attrnet-reid`` config: the inputs it names (checkpoint, data,
options), the tags it logs, and the run itself with its logging session. ``attrnet-train``'s
re-ID step reads the same options (its ``reid`` group, ``reid_options``) and runs the same
pipeline (``attrnet.retrieval.pipeline.run_reid``) on the model and data it already holds.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from attrnet.data.datamodule import AttributeDataModule
from attrnet.inference.predict import accelerator_of, prediction_trainer
from attrnet.models.loading import load_attribute_module
from attrnet.models.module import AttributeModule
from attrnet.retrieval.pipeline import ReidOptions, run_reid, run_split_file
from attrnet.tensorboard import (
    curated_reid_hparams,
    log_final_metrics,
    log_run_overview,
    register_hparams,
)


def reid_options(cfg: DictConfig) -> ReidOptions:
    """The pipeline options of an ``attrnet-reid`` config, or of a training run's ``reid``
    group (``conf/reid/default.yaml`` in both)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return ReidOptions(**{f.name: plain[f.name] for f in fields(ReidOptions)})


def reid_inputs(cfg: DictConfig) -> tuple[AttributeModule, AttributeDataModule, ReidOptions]:
    """The module, its data (the run's validation split by default) and the options that an
    ``attrnet-reid`` config describes."""
    options = reid_options(cfg)
    module = load_attribute_module(cfg.ckpt_path)
    split = cfg.split_file or run_split_file(cfg.ckpt_path)
    datamodule = instantiate(
        cfg.data,
        image_size=list(module.spec.image_size),
        split_file=None if split is None else str(split),
        cache_images=False,
        eval_batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
    )
    return module, datamodule, options


def reid_metric_names(cfg: DictConfig) -> list[str]:
    """The TensorBoard tags of the headline figures ``evaluate`` logs for ``cfg``."""
    if cfg.mode == "test":
        return [f"reid/{cfg.distances[0]}/{name}" for name in ("threshold", "val_mean_f1")]
    return [f"reid/{d}/{name}" for d in cfg.distances for name in ("mAP", "rank1")]


def evaluate(
    cfg: DictConfig,
    loggers: list[Logger] | None = None,
    step: int | None = None,
    trainer: L.Trainer | None = None,
) -> dict[str, dict[str, float]]:
    """Run the re-ID evaluation ``cfg`` describes; returns per-distance metrics (val,
    market1501) or the test mode's figures. The figures go to ``loggers`` at ``step`` (default:
    the checkpoint's step); without ``loggers``, to those of ``cfg.logger`` as an HParams
    session of their own. ``trainer`` predicts the features (a training run passes its own, so
    under DDP every rank takes part and rank 0 writes); by default one on ``cfg.device``."""
    module, datamodule, options = reid_inputs(cfg)
    trainer = trainer or prediction_trainer(*accelerator_of(cfg.device))
    own_session = loggers is None
    if own_session:
        loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
        register_hparams(loggers, curated_reid_hparams(cfg), reid_metric_names(cfg))
        log_run_overview(loggers, cfg, None)
    step = module.checkpoint_position[0] if step is None else step
    output_dir = Path(cfg.paths.output_dir)
    results = run_reid(
        module, datamodule, options, output_dir, cfg.ckpt_path, trainer, loggers, step
    )
    if own_session and trainer.is_global_zero:
        log_final_metrics(loggers, step)  # closes the HParams session
        for logger in loggers:  # as a Trainer's fit ends them (an MLflow run: FINISHED)
            logger.finalize("success")
    return results
