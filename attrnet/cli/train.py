"""``attrnet-train``: compose the Hydra config, train, validate the best checkpoint, report.

The run folder receives the composed config (Hydra), ``split.json``, TensorBoard and CSV logs,
checkpoints (best + last) and ``metrics.json`` with every final validation metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from attrnet.cli.common import CONFIG_PATH, format_table
from attrnet.io import atomic_write_text
from attrnet.metrics import per_attribute_table

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


def _instantiate_dict(section: DictConfig | None) -> list[Any]:
    return [instantiate(item) for item in (section or {}).values() if item is not None]


def _hparams_for_logging(cfg: DictConfig) -> dict[str, Any]:
    """The chosen settings, flattened, for TensorBoard's HParams tab."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    keep = {
        k: plain[k] for k in ("data", "model", "loss", "optimizer", "trainer", "seed") if k in plain
    }
    keep["data"] = {k: v for k, v in keep["data"].items() if k != "_target_"}
    return keep


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one training job described by ``cfg``; returns the final validation metrics."""
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.save_split(output_dir)

    phases = OmegaConf.to_container(cfg.optimizer.phases, resolve=True)
    model = instantiate(
        cfg.model,
        attribute_names=datamodule.attributes,
        positive_ratio=datamodule.positive_ratio,
        loss_strategy=cfg.loss.strategy,
        optimizer_phases=phases,
        image_size=list(datamodule.image_size),
        _convert_="all",
    )
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    loggers = _instantiate_dict(cfg.get("logger"))
    max_epochs = cfg.trainer.max_epochs or sum(int(p["epochs"]) for p in phases)
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, max_epochs=max_epochs
    )

    metric_names = {f"val/{name}": 0.0 for name in SUMMARY_METRICS}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(_hparams_for_logging(cfg), metric_names)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)

    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    best = (
        checkpoint.best_model_path
        if checkpoint is not None and checkpoint.best_model_path
        else None
    )
    trainer.validate(model, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False)
    metrics = dict(model.last_val_metrics)
    if trainer.is_global_zero:
        _report(output_dir, metrics, datamodule.attributes, best)
    return metrics


def _report(
    output_dir: Path, metrics: dict[str, float], attributes: list[str], best: str | None
) -> None:
    """Print the metrics table and write ``metrics.json`` atomically."""
    summary = {name: metrics[name] for name in SUMMARY_METRICS}
    print("\nFinal validation metrics" + (f" ({Path(best).name})" if best else "") + ":")
    print(format_table(summary))
    print("\nPer attribute:")
    print(per_attribute_table(metrics, attributes).round(4).to_string())
    payload = {"checkpoint": best, "summary": summary, "metrics": metrics}
    atomic_write_text(output_dir / "metrics.json", json.dumps(payload, indent=1))
    print(f"\nRun folder: {output_dir}")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float:
    """Entry point of ``attrnet-train``; returns the optimized metric for sweepers."""
    metrics = train(cfg)
    return metrics[cfg.optimized_metric.removeprefix("val/")]


if __name__ == "__main__":
    main()
