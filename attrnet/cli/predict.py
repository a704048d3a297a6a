"""``attrnet-predict``: classify a folder of images with a checkpoint into the study's CSV."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pandas as pd
from omegaconf import DictConfig

from attrnet.cli.common import CONFIG_PATH
from attrnet.cli.errors import reports_user_errors
from attrnet.data.market import list_images
from attrnet.inference.figure import predictions_figure, save_figure
from attrnet.inference.images import image_inputs
from attrnet.inference.predict import run_module
from attrnet.models.loading import load_attribute_module
from attrnet.output_guard import check_outputs
from attrnet.predictions import prediction_table, write_prediction_csv

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> Path:
    """Predict every image of ``cfg.images_dir``; returns the written CSV path."""
    outputs = {"output": cfg.output, **({"figure_path": cfg.figure_path} if cfg.figure else {})}
    inputs = {"ckpt_path": cfg.ckpt_path, "images_dir": cfg.images_dir}
    check_outputs(outputs, inputs, cfg.overwrite)
    module = load_attribute_module(cfg.ckpt_path)
    paths = list_images(cfg.images_dir)
    size = module.spec.image_size
    images = image_inputs(paths, size)
    probabilities = run_module(
        module,
        images,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        accelerator=cfg.accelerator,
        precision=cfg.precision,
    )["probabilities"]
    table = prediction_table(
        [p.name for p in paths], probabilities, module.attribute_names, module.threshold
    )
    output = Path(cfg.output)
    write_prediction_csv(output, table)
    log.info(f"Wrote {len(table)} predictions to {output}")
    if cfg.figure:
        count = min(cfg.figure_images, len(paths))
        frame = pd.DataFrame(
            probabilities[:count], index=paths[:count], columns=module.attribute_names
        )
        shown = [images[i] for i in range(count)]
        figure = predictions_figure(shown, frame, module.threshold, cfg.figure_top_k)
        save_figure(figure, cfg.figure_path)
        log.info(f"Drew the predictions of {count} images in {cfg.figure_path}")
    return output


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-predict``."""
    predict(cfg)


if __name__ == "__main__":
    main()
