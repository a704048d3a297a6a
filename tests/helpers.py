"""Test helpers: compose the real Hydra configs for tiny, fast runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torchvision.transforms.v2 import functional as TF

from attrnet.config import compose_run_config as compose_config
from attrnet.data.datamodule import AttributeDataModule
from attrnet.data.images import read_image
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD
from attrnet.data.sources import DataSource
from attrnet.models.backbone import AttributeResNet50
from attrnet.models.identity import IdentityBranch
from attrnet.models.losses import WeightedBCEWithLogits
from attrnet.models.module import AttributeModule
from attrnet.models.network import AttributeNetwork
from attrnet.models.spec import ModelSpec
from attrnet.optim import OptimizerPlan

REPO = Path(__file__).resolve().parents[1]

#: The tiny runs' input (height, width): ResNet50's total stride, so its last stage sees 2x2
#: and ends in a 1x1 map. Never narrower: at 16 px wide, layer4's first 3x3 stride-2 convolution
#: gets a 1-pixel-wide map, where oneDNN 3.12's CPU bf16 kernels let memory they never wrote
#: into the result (weight-gradient taps that see only padding on AVX512-BF16; NaN losses on
#: AMX CPUs once freed memory holds NaN).
TINY_IMAGE_SIZE = (32, 32)

__all__ = [
    "TINY_IMAGE_SIZE",
    "TINY_OVERRIDES",
    "compose_config",
    "make_datamodule",
    "make_module",
    "needs",
    "reference_inputs",
]


def make_datamodule(source: DataSource, **settings: Any) -> AttributeDataModule:
    """A datamodule over ``source`` with the shared settings of ``conf/_datamodule.yaml``, in
    the main process (no loader workers, no pinned memory) unless ``settings`` say otherwise."""
    shared = OmegaConf.load(REPO / "conf" / "_datamodule.yaml")
    shared.shuffle_seed = 0
    values = {**OmegaConf.to_container(shared), "num_workers": 0, "pin_memory": False, **settings}
    values.pop("_target_")
    return AttributeDataModule(source, **values)


def make_module(
    names: Sequence[str],
    net: AttributeNetwork | None = None,
    phases: Sequence[dict] = ({"optimizer": "adamw", "epochs": 1},),
    image_size: tuple[int, int] = TINY_IMAGE_SIZE,
    positive_ratio: Sequence[float] | None = None,
    identity: IdentityBranch | None = None,
    threshold: float = 0.5,
) -> AttributeModule:
    """An untrained module built from parts as attrnet-train builds it (a plain ResNet50 by
    default, the inverse-frequency criterion, the given optimizer phases)."""
    ratio = positive_ratio if positive_ratio is not None else [0.5] * len(names)
    return AttributeModule(
        net if net is not None else AttributeResNet50(len(names)),
        WeightedBCEWithLogits.from_ratio(ratio, "inverse_frequency"),
        OptimizerPlan(phases),
        ModelSpec(tuple(names), image_size, IMAGENET_MEAN, IMAGENET_STD),
        identity,
        threshold,
    )


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip a test where an optional extra's module is absent (e.g. on a GPU machine with only
    the core dependencies); ``pip install -e ".[test]"`` has them all."""
    missing = [m for m in modules if not _importable(m)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (an extra)")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package is absent
        return False


def reference_inputs(paths: Sequence[str | Path], size: tuple[int, int]) -> torch.Tensor:
    """The model input of image files by an independent route: PIL decode + resize
    (``read_image``), then torchvision's ``to_dtype(scale=True)`` and ``normalize`` per image."""
    return torch.stack(
        [
            TF.normalize(
                TF.to_dtype(read_image(path, size), torch.float32, scale=True),
                list(IMAGENET_MEAN),
                list(IMAGENET_STD),
            )
            for path in paths
        ]
    )


#: A tiny synthetic set and model input so a ResNet50 epoch takes seconds on two CPU cores.
TINY_OVERRIDES = [
    "data.source.num_train_ids=10",
    "data.source.num_test_ids=4",
    "data.source.images_per_id=4",
    "data.source.height=64",
    "data.source.width=32",
    "data.source.num_junk=4",
    "data.source.num_distractors=4",
    f"data.image_size=[{TINY_IMAGE_SIZE[0]},{TINY_IMAGE_SIZE[1]}]",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "data.val_count=3",
    "optimizer.first_epochs=1",
    "optimizer.second_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "callbacks.validation_figures.num_images=4",
]
