"""The trained network as one inference graph, and the single torch path that runs it.

:class:`InferenceNetwork` puts the preprocessing (uint8 -> float, normalisation with the
checkpoint's mean and std) and the requested outputs around an ``AttributeModule``; the ONNX
export traces exactly this graph. :func:`run_module` runs it over images with
``trainer.predict`` (the house's one inference path: Lightning picks the device and precision).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from attrnet.inference.info import OUTPUT_NAMES, ModelInfo
from attrnet.models.loading import load_attribute_module
from attrnet.models.module import AttributeModule

__all__ = ["InferenceNetwork", "load_attribute_module", "model_info", "run_module"]


def model_info(module: AttributeModule) -> ModelInfo:
    """The :class:`ModelInfo` of a loaded module (names, size, normalisation, outputs)."""
    outputs = OUTPUT_NAMES if module.identity_branch else OUTPUT_NAMES[:3]
    height, width = module.hparams.image_size
    return ModelInfo(
        attribute_names=tuple(module.attribute_names),
        image_size=(int(height), int(width)),
        mean=tuple(float(v) for v in module.normalization["mean"]),
        std=tuple(float(v) for v in module.normalization["std"]),
        threshold=float(module.hparams.threshold),
        outputs=outputs,
    )


class InferenceNetwork(nn.Module):
    """uint8 RGB images (N, 3, H, W) -> the requested outputs, as a tuple in ``outputs`` order.

    Float input is taken as already normalised (the training data pipeline's batches), so the
    same graph serves both. ``outputs`` are names of ``attrnet.inference.info.OUTPUT_NAMES``.
    """

    def __init__(self, module: AttributeModule, info: ModelInfo, outputs: Sequence[str]) -> None:
        super().__init__()
        missing = [name for name in outputs if name not in info.outputs]
        if missing:
            raise ValueError(
                f"outputs {missing} are not available; this model has {list(info.outputs)}"
                + (" (no identity branch)" if "identity" in missing else "")
            )
        self.module = module
        self.outputs = tuple(outputs)
        self.register_buffer("mean", torch.tensor(info.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(info.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if images.dtype == torch.uint8:  # as the training transform: scale to 0..1, normalise
            images = (images.float() / 255.0 - self.mean) / self.std
        embedding = self.module.embed(images)
        values: dict[str, torch.Tensor] = {"embedding": embedding}
        if {"logits", "probabilities"} & set(self.outputs):
            values["logits"] = self.module.head(embedding)
            values["probabilities"] = torch.sigmoid(values["logits"])
        if "identity" in self.outputs:
            values["identity"] = self.module.identity_feature(embedding)
        return tuple(values[name] for name in self.outputs)


class _Predictor(L.LightningModule):
    """Lets ``trainer.predict`` run an :class:`InferenceNetwork`; batches are image tensors or
    dicts with an ``image`` entry; each step returns the outputs by name, float32."""

    def __init__(self, network: InferenceNetwork) -> None:
        super().__init__()
        self.network = network

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch["image"] if isinstance(batch, dict) else batch
        values = self.network(images)
        return {name: v.float() for name, v in zip(self.network.outputs, values, strict=True)}


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-Trainer banner ("GPU available: ...") and its pytree deprecation
    notice (from Lightning's own code) for library calls."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run_module(
    module: AttributeModule,
    images: Any,
    outputs: Sequence[str] = ("probabilities",),
    *,
    batch_size: int = 32,
    accelerator: str = "auto",
    devices: int | list[int] | str = 1,
    precision: str = "32-true",
    info: ModelInfo | None = None,
) -> dict[str, np.ndarray]:
    """Run ``module`` over ``images`` with ``trainer.predict``; the named outputs, float32 (N, D).

    ``images``: a DataLoader, or anything indexable of uint8 (3, H, W) images (e.g.
    :class:`attrnet.inference.images.ImageInputs`, a uint8 tensor (N, 3, H, W)), batched by
    ``batch_size``. ``info`` defaults to the module's own (:func:`model_info`).
    """
    network = InferenceNetwork(module, info or model_info(module), outputs).eval()
    loader = images if isinstance(images, DataLoader) else DataLoader(images, batch_size)
    with _quiet_lightning():
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
        parts = trainer.predict(_Predictor(network), loader)
    return {name: torch.cat([p[name] for p in parts]).cpu().numpy() for name in outputs}


def accelerator_of(device: str) -> tuple[str, int | list[int]]:
    """``device`` ("auto", "cpu", "cuda", "cuda:N", "mps") as Lightning accelerator, devices."""
    name, _, index = device.partition(":")
    if name in ("auto", "cpu", "mps") and not index:
        return name, 1
    if name in ("cuda", "gpu") and (not index or index.isdigit()):
        return "gpu", [int(index)] if index else 1
    raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


class TorchModel:
    """A checkpoint loaded for inference: :func:`run_module` on the chosen ``device``."""

    def __init__(self, checkpoint: str | Path, device: str = "auto") -> None:
        self.accelerator, self.devices = accelerator_of(device)
        self.module = load_attribute_module(checkpoint).eval()
        self.info = model_info(self.module)

    def run(
        self, images: Sequence[np.ndarray], outputs: Sequence[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        return run_module(
            self.module,
            images,
            outputs,
            batch_size=batch_size,
            accelerator=self.accelerator,
            devices=self.devices,
            info=self.info,
        )
