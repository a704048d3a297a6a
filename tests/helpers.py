"""Test helpers: compose the real Hydra configs for tiny, fast runs."""

from __future__ import annotations

import importlib.util

import pytest

from attrnet.config import compose_run_config as compose_config

__all__ = ["TINY_OVERRIDES", "compose_config", "needs"]


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
