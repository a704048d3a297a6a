"""Test helpers: compose the real Hydra configs for tiny, fast runs."""

from __future__ import annotations

import importlib.util

import pytest

from attrnet.config import compose_run_config as compose_config

__all__ = ["TINY_IMAGE_SIZE", "TINY_OVERRIDES", "compose_config", "needs"]


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

#: The tiny runs' input (height, width): ResNet50's total stride, so its last stage sees 2x2
#: and ends in a 1x1 map. Never narrower: at 16 px wide, layer4's first 3x3 stride-2 convolution
#: gets a 1-pixel-wide map, where oneDNN 3.12's CPU bf16 kernels let memory they never wrote
#: into the result (weight-gradient taps that see only padding on AVX512-BF16; NaN losses on
#: AMX CPUs once freed memory holds NaN).
TINY_IMAGE_SIZE = (32, 32)

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
    "model.num_logged_images=4",
]
