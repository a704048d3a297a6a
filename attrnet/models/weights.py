"""Offline loading of torchvision's ImageNet ResNet50 weights (no network access ever).

Weights come from an explicit file or from torchvision's download cache
(``torch.hub.get_dir()/checkpoints``); a missing file raises a ``FileNotFoundError`` that says
where to put it and where to download it on a machine with internet.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

#: torchvision's file names for ``ResNet50_Weights.IMAGENET1K_V1`` and ``IMAGENET1K_V2``.
IMAGENET_FILES: tuple[str, ...] = ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")
DOWNLOAD_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
_SKIPPED_PREFIX = "fc."  # the 1000-class ImageNet classifier, replaced by the attribute head


def torchvision_cache_dir() -> Path:
    """Directory where torchvision caches downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_imagenet_weights(weights_path: str | Path | None = None) -> Path:
    """The weight file to use: ``weights_path`` if given, else the first cached torchvision file."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weight file {path} (model.net.weights_path) does not exist.\n"
                + _how_to_provide()
            )
        return path
    for name in IMAGENET_FILES:
        path = torchvision_cache_dir() / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"No ImageNet ResNet50 weights found in torchvision's cache {torchvision_cache_dir()} "
        f"(looked for {', '.join(IMAGENET_FILES)}); this machine cannot download them.\n"
        + _how_to_provide()
    )


def _how_to_provide() -> str:
    cache = torchvision_cache_dir()
    return (
        f"Download {DOWNLOAD_URL} on a machine with internet, then either\n"
        f"  - copy it to {cache / IMAGENET_FILES[0]} (torchvision's cache), or\n"
        f"  - pass its location: model.net.weights_path=/path/to/resnet50.pth\n"
        f"or train from random weights with model.net.pretrained=false."
    )


def load_imagenet_weights(model: nn.Module, weights_path: str | Path | None = None) -> Path:
    """Load ImageNet weights into a ResNet50 trunk (``model.trunk`` if present, else ``model``).

    The ImageNet classifier (``fc.*``) is skipped. Raises ``RuntimeError`` listing the trunk
    parameters the file lacks (wrong file), logs a warning for extra keys, and returns the path.
    """
    path = find_imagenet_weights(weights_path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise RuntimeError(f"{path} holds a {type(state).__name__}, expected a state_dict")
    trunk = getattr(model, "trunk", model)
    state = {k: v for k, v in state.items() if not k.startswith(_SKIPPED_PREFIX)}
    result = trunk.load_state_dict(state, strict=False)
    # Old checkpoints predate BatchNorm's step counter; BatchNorm fills it in, nothing is lost.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    missing = [k for k in missing if not k.startswith(_SKIPPED_PREFIX)]
    if missing:
        raise RuntimeError(
            f"{path} is not a torchvision ResNet50 state_dict: {len(missing)} trunk tensors "
            f"missing, e.g. {missing[:5]}; unexpected keys e.g. {result.unexpected_keys[:5]}"
        )
    if result.unexpected_keys:
        log.warning(
            "Ignored %d unexpected keys in %s, e.g. %s",
            len(result.unexpected_keys),
            path,
            result.unexpected_keys[:5],
        )
    log.info("Loaded ImageNet ResNet50 weights from %s", path)
    return path
