"""The attribute LightningModule: ResNet50 (plain / attention), weighted BCE, phases, metrics.

An optional identity branch (BNNeck, label-smoothed identity cross-entropy, batch-hard triplet
loss) turns it into a joint attribute + identity model (APR, Lin et al. 2019) or, with the
attribute weight at zero, a Bag-of-Tricks re-ID model (Luo et al. 2019). Predictions and
features of a trained module come from ``attrnet.inference.predict.run_module``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from attrnet.checkpoints import CheckpointError, load_checkpoint
from attrnet.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from attrnet.metrics import AttributeMetrics
from attrnet.models.backbone import AttributeResNet50
from attrnet.models.identity import IdentityHead
from attrnet.models.losses import WeightedBCEWithLogits, attribute_weights
from attrnet.models.plots import attribute_bar_chart, prediction_grid
from attrnet.models.reid_losses import batch_hard_triplet_loss
from attrnet.optim import (
    build_optimizer,
    normalize_phases,
    saved_phase,
    scheduler_config,
    upgrade_scheduler_state,
)
from attrnet.retrieval.study_metric import StudyReidMetric
from attrnet.tensorboard import logging_step, summary_writers

DEFAULT_PHASES = (
    {"optimizer": "adamw", "epochs": 50, "lr": 3e-4},
    {"optimizer": "sgd", "epochs": 100, "lr": 1e-2},
)


class AttributeModule(L.LightningModule):
    """Trains N sigmoid attribute outputs; N and the loss weights come from the data.

    The network (``net``, an ``AttributeResNet50`` with N outputs) and the identity head are
    injected (``conf/model``, ``conf/objective``); their constructor arguments are saved with
    the module's hyper-parameters (``net``, ``identity_head``), so ``load_attribute_module``
    rebuilds them from a checkpoint.

    ``image_size`` (height, width) records the training input size for prediction and re-ID.
    ``optimizer_phases`` is the optimizer plan (see ``attrnet.optim``); the ``OptimizerSwap``
    callback switches phases. ``active_phase`` is saved in checkpoints.

    Identity branch (on when ``id_loss_weight`` or ``triplet_loss_weight`` is positive): the
    loss is ``attribute_loss_weight * BCE + id_loss_weight * CE + triplet_loss_weight * triplet``;
    the triplet loss acts on the pooled embedding, the cross-entropy (``label_smoothing``) on the
    BNNeck feature, which is also the retrieval feature. The cross-entropy needs an
    ``identity_head``, which is only kept when ``id_loss_weight`` is positive (triplet-only
    training uses the embedding itself). Batches need an ``identity`` label
    (``data.sampler=identity`` gives P x K batches). Validation then also logs the study's re-ID
    protocol on the validation identities (``val/reid_rank1``, ``val/reid_mAP``).
    ``compile`` wraps the convolutional trunk in ``torch.compile``.

    Each validation leaves its figures in ``last_val_metrics``; with ``logs_validation`` off
    (the final evaluation of the best checkpoint) it logs nothing, so no ``val/*`` curve gets
    a point that is not a training epoch. Figures go to TensorBoard at the global step.
    """

    def __init__(
        self,
        net: AttributeResNet50,
        attribute_names: list[str],
        positive_ratio: list[float],
        identity_head: IdentityHead | None = None,
        loss_strategy: str = "inverse_frequency",
        optimizer_phases: list[dict[str, Any]] = DEFAULT_PHASES,
        channels_last: bool = False,
        threshold: float = 0.5,
        num_logged_images: int = 16,
        image_size: list[int] = (256, 128),
        attribute_loss_weight: float = 1.0,
        id_loss_weight: float = 0.0,
        triplet_loss_weight: float = 0.0,
        triplet_margin: float | None = 0.3,
        label_smoothing: float = 0.1,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if len(positive_ratio) != len(attribute_names):
            raise ValueError(
                f"positive_ratio has {len(positive_ratio)} values "
                f"for {len(attribute_names)} attributes"
            )
        if net.head.out_features != len(attribute_names):
            raise ValueError(
                f"the network has {net.head.out_features} outputs "
                f"for {len(attribute_names)} attributes"
            )
        if id_loss_weight > 0 and identity_head is None:
            raise ValueError("id_loss_weight > 0 needs an identity_head (model.identity_head)")
        identity_head = identity_head if id_loss_weight > 0 else None
        self.save_hyperparameters(ignore=["net", "identity_head"])
        self.hparams["net"] = dict(net.hparams)
        head = None if identity_head is None else dict(identity_head.hparams)
        self.hparams["identity_head"] = head
        self.attribute_names = list(attribute_names)
        self.net = net
        self.channels_last = channels_last
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:  # the bound method is compiled; parameter names in checkpoints stay the same
            self.net.feature_map = torch.compile(self.net.feature_map)
        self.identity_branch = id_loss_weight > 0 or triplet_loss_weight > 0
        self.identity_head = identity_head
        pos_weight, neg_weight = attribute_weights(torch.tensor(positive_ratio), loss_strategy)
        self.criterion = WeightedBCEWithLogits(pos_weight, neg_weight)
        self.val_metrics = AttributeMetrics(self.attribute_names, threshold=threshold)
        self.val_loss = MeanMetric(nan_strategy="disable")  # a NaN loss shows as NaN
        self.logs_validation = True
        #: (step of its last validation on the TensorBoard axis, epoch) of the checkpoint
        #: loaded last: where its weights sit on the curves
        self.checkpoint_position: tuple[int, int] | None = None
        self._validation_step = 0
        self.optimizer_phases = normalize_phases(optimizer_phases)
        self.active_phase = 0
        self.last_val_metrics: dict[str, float] = {}
        self._example_batch: dict[str, torch.Tensor] | None = None
        self.val_reid = StudyReidMetric() if self.identity_branch else None
        # the data pipeline's normalisation, saved in checkpoints for inference and export
        self.normalization = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}

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

    def identity_feature(self, embedding: torch.Tensor) -> torch.Tensor:
        """The identity retrieval feature: BNNeck output, or the embedding for triplet-only."""
        if not self.identity_branch:
            raise ValueError(
                "this checkpoint has no identity branch (trained without id_loss_weight or "
                "triplet_loss_weight); use attribute features (logits) or the embedding"
            )
        return embedding if self.identity_head is None else self.identity_head.feature(embedding)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        embedding = self.embed(batch["image"])
        logits = self.head(embedding)
        size = len(logits)
        attribute_loss = self.criterion(logits, batch["target"])
        loss = self.hparams.attribute_loss_weight * attribute_loss
        if self.identity_branch:
            attribute_loss = attribute_loss.detach()
            loss = loss + self._identity_losses(embedding, batch["identity"], size)
            self.log("train/attribute_loss", attribute_loss, on_epoch=True, batch_size=size)
        # no prog_bar: Lightning would turn it into a Python float (a GPU sync) every few steps
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=size)
        return loss

    def _identity_losses(
        self, embedding: torch.Tensor, identities: torch.Tensor, size: int
    ) -> torch.Tensor:
        """Weighted identity cross-entropy + batch-hard triplet loss, each logged."""
        hp = self.hparams
        total = embedding.new_zeros((), dtype=torch.float32)
        if hp.id_loss_weight > 0:
            _, id_logits = self.identity_head(embedding)
            id_loss = F.cross_entropy(
                id_logits.float(), identities, label_smoothing=hp.label_smoothing
            )
            total = total + hp.id_loss_weight * id_loss
            self.log("train/id_loss", id_loss.detach(), on_epoch=True, batch_size=size)
        if hp.triplet_loss_weight > 0:
            triplet = batch_hard_triplet_loss(embedding, identities, hp.triplet_margin)
            total = total + hp.triplet_loss_weight * triplet
            self.log("train/triplet_loss", triplet.detach(), on_epoch=True, batch_size=size)
        return total

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        embedding = self.embed(batch["image"])
        logits = self.head(embedding)
        loss = self.criterion(logits, batch["target"])
        self.val_loss.update(loss.detach(), len(logits))
        self.val_metrics.update(logits, batch["target"])
        if self.val_reid is not None and "identity" in batch:
            features = self.identity_feature(embedding)
            index = torch.as_tensor(batch["index"], device=features.device)
            self.val_reid.update(features, batch["identity"], index)
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
        results["loss"] = float(self.val_loss.compute())  # the mean over all ranks' images
        self.val_loss.reset()
        if self.val_reid is not None and self.val_reid.update_called:
            results.update({k: float(v) for k, v in self.val_reid.compute().items()})
            self.val_reid.reset()
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
        self._validation_step = logging_step(self.trainer)
        self._log_figures(results)

    def _log_figures(self, results: dict[str, float]) -> None:
        """The F1 bar chart and the predictions grid, on the scalars' (global) step axis."""
        writers = summary_writers(self.loggers)
        if not writers:
            return
        writer = writers[0]
        f1 = {name: results[f"f1/{name}"] for name in self.attribute_names}
        title = f"validation F1, epoch {self.current_epoch}"
        step = self._validation_step
        writer.add_figure("val/f1_per_attribute", attribute_bar_chart(f1, title), step)
        if self._example_batch is not None and self.hparams.num_logged_images > 0:
            grid = prediction_grid(
                self._example_batch["images"],
                self._example_batch["probabilities"],
                self._example_batch["targets"],
                self.attribute_names,
                self.hparams.threshold,
            )
            writer.add_image("val/predictions", grid, step, dataformats="HWC")

    def configure_optimizers(self) -> dict[str, Any]:
        phase = self.optimizer_phases[self.active_phase]
        if self._clips_fp16_gradients():
            phase = {**phase, "fused": False}
        optimizer = build_optimizer(self.parameters(), phase)
        return {"optimizer": optimizer, "lr_scheduler": scheduler_config(optimizer, phase)}

    def _clips_fp16_gradients(self) -> bool:
        """fp16 AMP with gradient clipping: Lightning unscales the gradients before clipping,
        which it refuses for fused steps (they unscale inside), so those use unfused ones."""
        trainer = self._trainer
        return (
            trainer is not None
            and bool(trainer.gradient_clip_val)
            and str(trainer.precision).startswith("16")
        )

    def initialize_from(self, checkpoint_path: str) -> None:
        """Start from the network weights of another run's checkpoint (fine-tuning).

        The backbone and attribute head must match; the identity branch may be new (it keeps
        its fresh initialisation). Optimizer state and epochs are not taken over.
        """
        state = load_checkpoint(checkpoint_path).get("state_dict")
        if state is None:
            raise CheckpointError(f"{checkpoint_path}: not a Lightning checkpoint (no state_dict)")
        own = {k: v for k, v in self.state_dict().items() if k.startswith("net.")}
        wanted = {k: v for k, v in state.items() if k.startswith("net.")}
        differing = [k for k, v in wanted.items() if k not in own or own[k].shape != v.shape]
        differing += [k for k in own if k not in wanted]
        if differing:
            raise ValueError(
                f"{checkpoint_path}: its network does not match this model (first differing "
                f"weights: {differing[:3]}); fine-tuning needs the same backbone, attention "
                "setting and attribute list"
            )
        self.load_state_dict(wanted, strict=False)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["optimizer_phase"] = self.active_phase
        checkpoint["normalization"] = self.normalization
        checkpoint["validation_step"] = self._validation_step

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.active_phase = saved_phase(self.optimizer_phases, checkpoint.get("optimizer_phase", 0))
        phase = self.optimizer_phases[self.active_phase]
        if "lr_schedulers" in checkpoint:
            checkpoint["lr_schedulers"] = [
                upgrade_scheduler_state(state, phase) for state in checkpoint["lr_schedulers"]
            ]
        # checkpoints written before it was saved were all trained with ImageNet statistics
        self.normalization = checkpoint.get("normalization", self.normalization)
        self.checkpoint_position = (
            int(checkpoint.get("validation_step", checkpoint.get("global_step", 0))),
            int(checkpoint.get("epoch", 0)),
        )
