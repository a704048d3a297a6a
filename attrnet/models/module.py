"""The attribute LightningModule: ResNet50 (plain / attention), weighted BCE, phases, metrics."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from attrnet.losses import WeightedBCEWithLogits, attribute_weights
from attrnet.metrics import AttributeMetrics
from attrnet.models.backbone import AttributeResNet50
from attrnet.models.plots import attribute_bar_chart, prediction_grid
from attrnet.optim import build_optimizer, build_scheduler, normalize_phase

DEFAULT_PHASES = (
    {"optimizer": "adamw", "epochs": 50, "lr": 3e-4},
    {"optimizer": "sgd", "epochs": 100, "lr": 1e-2},
)


class AttributeModule(L.LightningModule):
    """Trains N sigmoid attribute outputs; N and the loss weights come from the data.

    ``image_size`` (height, width) records the training input size for prediction and re-ID.
    ``optimizer_phases`` is the optimizer plan (see ``attrnet.optim``); the ``OptimizerSwap``
    callback switches phases. ``active_phase`` is saved in checkpoints.
    """

    def __init__(
        self,
        attribute_names: list[str],
        positive_ratio: list[float],
        loss_strategy: str = "inverse_frequency",
        optimizer_phases: list[dict[str, Any]] = DEFAULT_PHASES,
        attention: bool = False,
        attention_stages: list[int] = (4,),
        last_stride: int = 2,
        dropout: float = 0.0,
        pretrained: bool = False,
        weights_path: str | None = None,
        activation_checkpointing: bool = False,
        zero_init_residual: bool = True,
        channels_last: bool = False,
        threshold: float = 0.5,
        num_logged_images: int = 16,
        image_size: list[int] = (256, 128),
    ) -> None:
        super().__init__()
        if len(positive_ratio) != len(attribute_names):
            raise ValueError(
                f"positive_ratio has {len(positive_ratio)} values "
                f"for {len(attribute_names)} attributes"
            )
        self.save_hyperparameters()
        self.attribute_names = list(attribute_names)
        self.net = AttributeResNet50(
            num_attributes=len(attribute_names),
            attention=attention,
            attention_stages=list(attention_stages),
            last_stride=last_stride,
            dropout=dropout,
            pretrained=pretrained,
            weights_path=weights_path,
            activation_checkpointing=activation_checkpointing,
            zero_init_residual=zero_init_residual,
        )
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        pos_weight, neg_weight = attribute_weights(torch.tensor(positive_ratio), loss_strategy)
        self.criterion = WeightedBCEWithLogits(pos_weight, neg_weight)
        self.val_metrics = AttributeMetrics(self.attribute_names, threshold=threshold)
        self.optimizer_phases = [normalize_phase(dict(p)) for p in optimizer_phases]
        self.active_phase = 0
        self.last_val_metrics: dict[str, float] = {}
        self._example_batch: dict[str, torch.Tensor] | None = None

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Attribute logits (B, N)."""
        return self.net(self._prepare(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled backbone embedding (B, 2048)."""
        return self.net.forward_features(self._prepare(images))

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """Attribute logits of a pooled embedding (inference: dropout is off in eval mode)."""
        return self.net.head(self.net.dropout(embedding))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["target"])
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(logits)
        )
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["target"])
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(logits))
        self.val_metrics.update(logits, batch["target"])
        if batch_idx == 0:
            keep = self.hparams.num_logged_images
            self._example_batch = {
                "images": batch["image"][:keep].detach().cpu(),
                "probabilities": torch.sigmoid(logits[:keep].float()).detach().cpu(),
                "targets": batch["target"][:keep].detach().cpu(),
            }

    def on_validation_epoch_end(self) -> None:
        results = {name: float(value) for name, value in self.val_metrics.compute().items()}
        self.val_metrics.reset()
        summary = {k: v for k, v in results.items() if "/" not in k}
        self.log("val/mA", summary.pop("mA"), prog_bar=True)
        self.log_dict({f"val/{k}": v for k, v in summary.items()})
        if self.trainer.sanity_checking:
            return
        self.log_dict({f"val_attr/{k}": v for k, v in results.items() if "/" in k})
        self.last_val_metrics = results
        self._log_figures(results)

    def _log_figures(self, results: dict[str, float]) -> None:
        logger = next((lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)), None)
        if logger is None or self.global_rank != 0:
            return
        f1 = {name: results[f"f1/{name}"] for name in self.attribute_names}
        writer = logger.experiment
        writer.add_figure(
            "val/f1_per_attribute", attribute_bar_chart(f1, "validation F1"), self.current_epoch
        )
        if self._example_batch is not None and self.hparams.num_logged_images > 0:
            grid = prediction_grid(
                self._example_batch["images"],
                self._example_batch["probabilities"],
                self._example_batch["targets"],
                self.attribute_names,
                self.hparams.threshold,
            )
            writer.add_figure("val/predictions", grid, self.current_epoch)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Sigmoid probabilities (B, N)."""
        return torch.sigmoid(self(batch["image"]).float())

    def configure_optimizers(self) -> dict[str, Any]:
        phase = self.optimizer_phases[self.active_phase]
        optimizer = build_optimizer(self.parameters(), phase)
        scheduler = build_scheduler(optimizer, phase)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["optimizer_phase"] = self.active_phase

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.active_phase = int(checkpoint.get("optimizer_phase", 0))
