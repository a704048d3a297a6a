"""The attribute LightningModule: training and validation logic around injected parts.

Everything configurable is a part built from its config and injected (as in the
lightning-hydra-template): the network (``conf/model``), the attribute criterion (``conf/loss``,
weighted with the training split's statistics), the optimizer plan (``conf/optimizer``) and the
optional identity branch (``conf/objective``). The module adds what it learned from the data (the
:class:`~attrnet.models.spec.ModelSpec`) and the decision threshold. Predictions and features of
a trained module come from ``attrnet.inference.predict.run_module``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric

from attrnet.metrics import AttributeMetrics
from attrnet.models.identity import IdentityBranch
from attrnet.models.legacy import upgrade_state_dict
from attrnet.models.losses import WeightedBCEWithLogits
from attrnet.models.network import AttributeNetwork
from attrnet.models.spec import ModelSpec
from attrnet.optim import OptimizerPlan, saved_phase, upgrade_scheduler_state
from attrnet.tensorboard import logging_step


class AttributeModule(L.LightningModule):
    """Trains the network's N sigmoid attribute outputs (and the identity branch, if any).

    The loss is the criterion's (``attribute_weight`` times it with an identity branch, plus the
    branch's weighted identity losses). Validation computes the attribute metrics (mA, instance
    and macro figures, per attribute) and, with an identity branch, the branch's re-ID metric.
    Each validation leaves its figures in ``last_val_metrics``; with ``logs_validation`` off (the
    final evaluation of the best checkpoint) it logs nothing, so no ``val/*`` curve gets a point
    that is not a training epoch. The OptimizerSwap callback moves ``active_phase`` along the
    plan; checkpoints keep it, and every part's arguments (``hparams``) to rebuild the module.
    """

    def __init__(
        self,
        net: AttributeNetwork,
        criterion: WeightedBCEWithLogits,
        optimizer: OptimizerPlan,
        spec: ModelSpec,
        identity: IdentityBranch | None = None,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        count = len(spec.attribute_names)
        if net.num_attributes != count or criterion.pos_weight.numel() != count:
            raise ValueError(
                f"the network has {net.num_attributes} outputs and the criterion "
                f"{criterion.pos_weight.numel()} weights for {count} attributes"
            )
        self.net, self.criterion, self.identity = net, criterion, identity
        self.optimizer_plan = optimizer
        self.spec = spec
        self.save_hyperparameters(
            {
                "net": net.spec(),
                "identity": None if identity is None else identity.spec(),
                "optimizer": optimizer.phases,
                "spec": spec.to_dict(),
                "threshold": threshold,
            }
        )
        self.val_metrics = AttributeMetrics(spec.attribute_names, threshold=threshold)
        # a NaN loss shows as NaN; not nan_strategy="disable", which drops the weights
        # (torchmetrics issue #3434) and made this a plain mean over batches
        self.val_loss = MeanMetric(nan_strategy=float("nan"))
        self.active_phase = 0
        self.logs_validation = True
        self.last_val_metrics: dict[str, float] = {}
        #: (step of its last validation on the TensorBoard axis, epoch) of the checkpoint
        #: loaded last: where its weights sit on the curves
        self.checkpoint_position: tuple[int, int] | None = None
        self.validation_step_position = 0
        #: whether training runs in channels_last (decided by the network at the fit's start)
        self.channels_last = False

    @property
    def attribute_names(self) -> list[str]:
        return list(self.spec.attribute_names)

    @property
    def threshold(self) -> float:
        return float(self.hparams.threshold)

    def on_fit_start(self) -> None:
        """Train in the memory format and compilation the network asks for on this device."""
        self.channels_last = self.net.uses_channels_last(self.device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        setting = self.net.compile_setting
        if self.net.compile_for(self.device) is None and setting:  # CUDA graphs off CUDA
            rank_zero_info(f"model.net.compile={setting}: nothing to compile on {self.device}")

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Attribute logits (B, N)."""
        return self.net(self._prepare(images))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled backbone embedding (B, D)."""
        return self.net.forward_features(self._prepare(images))

    def head(self, embedding: torch.Tensor) -> torch.Tensor:
        """Attribute logits of a pooled embedding."""
        return self.net.classify(embedding)

    def identity_feature(self, embedding: torch.Tensor) -> torch.Tensor:
        """The identity retrieval feature of an identity-trained model."""
        if self.identity is None:
            raise ValueError(
                "this checkpoint has no identity branch (trained with objective=attributes); "
                "use attribute features (logits) or the embedding"
            )
        return self.identity.feature(embedding)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        embedding = self.embed(batch["image"])
        size = len(embedding)
        loss = attribute_loss = self.criterion(self.head(embedding), batch["target"])
        if self.identity is not None:
            terms = self.identity.losses(embedding, batch["identity"])
            loss = self.identity.total(attribute_loss, terms)
            for name, value in {"attribute_loss": attribute_loss, **terms}.items():
                self.log(f"train/{name}", value.detach(), on_epoch=True, batch_size=size)
        # no prog_bar: Lightning would turn it into a Python float (a GPU sync) every few steps
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=size)
        return loss

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Updates the metrics; returns the logits for callbacks (figures)."""
        embedding = self.embed(batch["image"])
        logits = self.head(embedding)
        loss = self.criterion(logits, batch["target"])
        # weighted by the known cells it averages over: the epoch loss is the mean over all
        # known cells of all ranks (per image when every label is known)
        self.val_loss.update(loss.detach(), (~batch["target"].isnan()).sum())
        self.val_metrics.update(logits, batch["target"])
        metric = None if self.identity is None else self.identity.metric
        if metric is not None and "identity" in batch:
            index = torch.as_tensor(batch["index"], device=embedding.device)
            metric.update(self.identity.feature(embedding), batch["identity"], index)
        return {"logits": logits.detach()}

    def on_validation_epoch_end(self) -> None:
        results = {name: float(value) for name, value in self.val_metrics.compute().items()}
        self.val_metrics.reset()
        results["loss"] = float(self.val_loss.compute())  # the mean over all ranks' known cells
        self.val_loss.reset()
        metric = None if self.identity is None else self.identity.metric
        if metric is not None and metric.update_called:
            results.update({k: float(v) for k, v in metric.compute().items()})
            metric.reset()
        if not self.trainer.sanity_checking:
            self.last_val_metrics = results
        if not self.logs_validation:
            return
        summary = {k: v for k, v in results.items() if "/" not in k}
        self.log("val/mA", summary.pop("mA"), prog_bar=True)
        self.log_dict({f"val/{k}": v for k, v in summary.items()})
        if self.trainer.sanity_checking:
            return
        self.log_dict({f"val_attr/{k}": v for k, v in results.items() if "/" in k})
        self.validation_step_position = logging_step(self.trainer)

    def configure_optimizers(self) -> dict[str, Any]:
        return self.optimizer_plan.configure(
            self.parameters(), self.active_phase, fused=not self._clips_fp16_gradients()
        )

    def _clips_fp16_gradients(self) -> bool:
        """fp16 AMP with gradient clipping: Lightning unscales the gradients before clipping,
        which it refuses for fused steps (they unscale inside), so those use unfused ones."""
        trainer = self._trainer
        return (
            trainer is not None
            and bool(trainer.gradient_clip_val)
            and str(trainer.precision).startswith("16")
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["optimizer_phase"] = self.active_phase
        checkpoint["validation_step"] = self.validation_step_position

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_state_dict(checkpoint)
        phases = self.optimizer_plan.phases
        self.active_phase = saved_phase(phases, checkpoint.get("optimizer_phase", 0))
        phase = phases[self.active_phase]
        if "lr_schedulers" in checkpoint:
            checkpoint["lr_schedulers"] = [
                upgrade_scheduler_state(state, phase) for state in checkpoint["lr_schedulers"]
            ]
        self.checkpoint_position = (
            int(checkpoint.get("validation_step", checkpoint.get("global_step", 0))),
            int(checkpoint.get("epoch", 0)),
        )
