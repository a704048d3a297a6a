"""The house's one inference path: a trained module run over images by ``trainer.predict``.

Predictions (``attrnet-predict``, ``attrnet.load``), the test split's scores and re-ID features
all come from :func:`run_module`. Lightning picks the device and precision and, under DDP, gives
each rank its share of the images (an unrepeated sampler); the ranks' rows are then gathered
(torchmetrics) and put back in dataset order, so every rank holds what one process would.
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
from torch.utils.data import DataLoader, Dataset
from torchmetrics.utilities.distributed import gather_all_tensors

from attrnet.inference.info import FLIPPED, ModelInfo
from attrnet.inference.network import InferenceNetwork, model_info
from attrnet.models.loading import load_attribute_module
from attrnet.models.module import AttributeModule


class IndexedImages(Dataset):
    """``{"image": uint8 (3, H, W), "index": i}`` for anything indexable of uint8 images, so
    every prediction row can be put back at its image after DDP has shared them out."""

    def __init__(self, images: Any) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": torch.as_tensor(self.images[index]), "index": index}


class _Predictor(L.LightningModule):
    """Lets ``trainer.predict`` run an :class:`InferenceNetwork` on ``{"image", "index"}``
    batches; each step returns the outputs by name (float32), with the flipped images' outputs
    under :data:`FLIPPED` names when ``flip`` is on, and the batch's dataset indices."""

    def __init__(self, network: InferenceNetwork, flip: bool) -> None:
        super().__init__()
        self.network = network
        self.flip = flip

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch["image"]
        names = self.network.outputs
        rows = {name: v.float() for name, v in zip(names, self.network(images), strict=True)}
        if self.flip:
            flipped = self.network(images.flip(-1))
            rows.update({FLIPPED + n: v.float() for n, v in zip(names, flipped, strict=True)})
        rows["index"] = torch.as_tensor(batch["index"], device=images.device)
        return rows


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


def prediction_trainer(
    accelerator: str = "auto", devices: int | list[int] | str = 1, precision: str = "32-true"
) -> L.Trainer:
    """A Trainer for inference only: no logger, checkpoints, progress bar or model summary."""
    with _quiet_lightning():
        return L.Trainer(
            accelerator=accelerator,
            devices=devices,
            precision=precision,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )


def _gathered(
    parts: list[dict[str, torch.Tensor]], count: int, trainer: L.Trainer
) -> dict[str, np.ndarray]:
    """Every rank's prediction rows, in dataset order, as float32 numpy arrays."""
    rows = {name: torch.cat([part[name] for part in parts]) for name in parts[0]} if parts else {}
    if trainer.world_size > 1:
        rows = {name: torch.cat(gather_all_tensors(value)) for name, value in rows.items()}
    index = rows.pop("index", torch.zeros(0, dtype=torch.long)).cpu()
    order = torch.argsort(index)
    if not torch.equal(index[order], torch.arange(count)):
        raise ValueError(
            f"the prediction covered {index.unique().numel()} of {count} images "
            "(trainer.limit_predict_batches or fast_dev_run would leave some out)"
        )
    return {name: value.cpu()[order].numpy() for name, value in rows.items()}


def run_module(
    module: AttributeModule,
    images: Any,
    outputs: Sequence[str] = ("probabilities",),
    *,
    trainer: L.Trainer | None = None,
    flip: bool = False,
    batch_size: int = 32,
    num_workers: int = 0,
    accelerator: str = "auto",
    devices: int | list[int] | str = 1,
    precision: str = "32-true",
    info: ModelInfo | None = None,
) -> dict[str, np.ndarray]:
    """Run ``module`` over ``images`` with ``trainer.predict``; the named outputs, float32 (N, D)
    in image order (with ``flip``, also those of the mirrored images, named ``FLIPPED + name``).

    ``images``: a DataLoader of ``{"image", "index"}`` batches (the datamodule's
    ``image_loader``), or anything indexable of uint8 (3, H, W) images (e.g.
    :class:`attrnet.inference.images.ImageInputs`, a uint8 tensor (N, 3, H, W)), batched by
    ``batch_size``. ``trainer``: the Trainer that predicts (a training run's own, to share the
    images across its DDP ranks); by default one made from ``accelerator``, ``devices`` and
    ``precision``. ``info`` defaults to the module's own (:func:`model_info`).
    """
    network = InferenceNetwork(module, info or model_info(module), outputs).eval()
    if not isinstance(images, DataLoader):
        images = DataLoader(IndexedImages(images), batch_size, num_workers=num_workers)
    trainer = trainer or prediction_trainer(accelerator, devices, precision)
    count = len(images.dataset)
    if count == 0:
        raise ValueError("no images to predict")
    if count < trainer.world_size:  # every rank decides alike: none waits in a collective
        raise ValueError(
            f"{count} images for {trainer.world_size} processes: Lightning gives every process "
            "at least one; predict them with a one-device Trainer"
        )
    with _quiet_lightning():
        parts = trainer.predict(_Predictor(network, flip), images)
    return _gathered(parts, count, trainer)


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
        self.trainer = prediction_trainer(*accelerator_of(device))
        self.module = load_attribute_module(checkpoint).eval()
        self.info = model_info(self.module)

    def run(
        self, images: Sequence[np.ndarray], outputs: Sequence[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        return run_module(
            self.module,
            images,
            outputs,
            trainer=self.trainer,
            batch_size=batch_size,
            info=self.info,
        )
