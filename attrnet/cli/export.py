"""``attrnet-export``: a checkpoint as an ONNX file, verified with onnxruntime before writing."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from attrnet.cli.common import CONFIG_PATH
from attrnet.cli.errors import reports_user_errors
from attrnet.inference.export import ExportError, export_onnx

FORMATS = ("onnx",)
log = logging.getLogger(__name__)


def export(cfg: DictConfig) -> Path:
    """Export ``cfg.ckpt_path`` to ``cfg.output``; returns the written path."""
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r}: expected one of {list(FORMATS)}")
    result = export_onnx(
        cfg.ckpt_path,
        cfg.output,
        cfg.images_dir,
        cfg.num_samples,
        cfg.tolerance,
        cfg.opset,
        cfg.overwrite,
    )
    height, width = result.info.image_size
    lines = [
        f"input  images: uint8 RGB (N, 3, {height}, {width}), normalised inside the graph",
        f"output {', '.join(result.info.outputs)}",
        *(f"max |onnxruntime - PyTorch| {n:<13} {v:.3g}" for n, v in result.max_difference.items()),
        f"Wrote {result.path} (checked on {result.num_samples} images)",
    ]
    log.info("\n".join(lines))
    return result.path


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
@reports_user_errors
def main(cfg: DictConfig) -> None:
    """Entry point of ``attrnet-export``; exits with status 1 when the parity check fails."""
    try:
        export(cfg)
    except ExportError as error:
        log.error(f"attrnet-export: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
