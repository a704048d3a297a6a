"""Test helpers: compose the real Hydra configs for tiny, fast runs."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from attrnet.config import compose_run_config as compose_config
from attrnet.data.images import read_image
from attrnet.data.normalize import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["TINY_OVERRIDES", "compose_config", "needs", "reference_inputs"]


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
    "data.image_size=[32,16]",
    "data.batch_size=8",
    "data.eval_batch_size=16",
    "data.val_count=3",
    "optimizer.first_epochs=1",
    "optimizer.second_epochs=1",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "model.num_logged_images=4",
]
