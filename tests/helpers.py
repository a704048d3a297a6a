"""Test helpers: compose the real Hydra configs for tiny, fast runs."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict

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


def compose_config(name: str, output_dir: Path, overrides: list[str] | None = None) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as Hydra would, with the run folder set to ``output_dir``."""
    with initialize_config_module("attrnet.conf", version_base="1.3"):
        cfg = compose(name, overrides=overrides or [])
    with open_dict(cfg):
        cfg.paths.root_dir = str(output_dir)
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
    return cfg
