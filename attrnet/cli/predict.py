"""``attrnet-predict``: classify a folder of images with a checkpoint into the study's CSV."""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
import pandas as pd
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from attrnet.cli.common import CONFIG_PATH, load_attribute_module
from attrnet.data.dataset import AttributeImageDataset
from attrnet.data.market import list_images
from attrnet.data.transforms import eval_transform
from attrnet.inference.figure import predictions_figure, save_figure
from attrnet.inference.images import image_inputs
from attrnet.predictions import prediction_table, write_prediction_csv


def predict(cfg: DictConfig) -> Path:
    """Predict every image of ``cfg.images_dir``; returns the written CSV path."""
    module = load_attribute_module(cfg.ckpt_path)
    paths = list_images(cfg.images_dir)
    size = tuple(module.hparams.image_size)
    dataset = AttributeImageDataset([str(p) for p in paths], None, size, eval_transform())
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=False,
        enable_progress_bar=True,
        enable_model_summary=False,
    )
    probabilities = torch.cat(trainer.predict(module, loader)).numpy()
    table = prediction_table(
        [p.name for p in paths], probabilities, module.attribute_names, module.hparams.threshold
    )
    output = Path(cfg.output)
    write_prediction_csv(output, table)
    print(f"Wrote {len(table)} predictions to {output}")
    if cfg.figure:
        shown = paths[: cfg.figure_images]
        names = module.attribute_names
        frame = pd.DataFrame(probabilities[: len(shown)], index=shown, columns=names)
        figure = predictions_figure(
            image_inputs(shown, size), frame, module.hparams.threshold, cfg.figure_top_k
        )
        save_figure(figure, cfg.figure_path)
        print(f"Drew the predictions of {len(shown)} images in {cfg.figure_path}")
    return output


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-predict``."""
    predict(cfg)


if __name__ == "__main__":
    main()
