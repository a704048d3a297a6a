"""Weights for a timm network from a local file or timm's cache; nothing is ever downloaded.

A ``.pth`` or ``.safetensors`` state dict of the timm network (``model.net.weights_path``), or the
file timm's ``pretrained=True`` would have cached (the Hugging Face hub cache, or torch hub's for
the networks timm fetches by URL). The file goes through the network's own timm checkpoint
filter (which resizes position embeddings and window tables to the network's input size and
converts original releases), its ImageNet classifier is dropped, and every other tensor must
fit: a file of another network fails naming the tensors missing, unexpected or of other shapes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

log = logging.getLogger(__name__)

#: the files timm keeps on the Hugging Face hub, safetensors first (as timm loads them)
HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def find_timm_weights(trunk: nn.Module, name: str, weights_path: str | Path | None) -> Path:
    """``weights_path`` if given, else the cached file of the trunk's pretrained tag."""
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"timm weight file {path} (model.net.weights_path) does not exist"
            )
        return path
    config = trunk.pretrained_cfg
    found = cached_file(config)
    if found is None:
        raise FileNotFoundError(
            f"no cached weights of timm's {name} ({config.get('hf_hub_id') or config.get('url')}) "
            "and nothing is downloaded: run timm.create_model("
            f"{name!r}, pretrained=True) on a machine with internet and copy its cache here, or "
            "pass model.net.weights_path=<.pth or .safetensors>, or set model.net.pretrained=false"
        )
    return found


def cached_file(config: dict[str, Any]) -> Path | None:
    """The weight file of a timm pretrained config in the local caches, if there is one."""
    from huggingface_hub import try_to_load_from_cache  # installed with timm

    if config.get("hf_hub_id"):
        repo, _, revision = config["hf_hub_id"].partition("@")
        names = [config["hf_hub_filename"]] if config.get("hf_hub_filename") else HUB_FILES
        for filename in names:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if config.get("url"):
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(config["url"]).path).name
        if path.is_file():
            return path
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a ``.pth`` state dict (``weights_only``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file  # installed with timm

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any reader's failure means the same: not a weight file
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(
            f"{path}: not a readable .pth or .safetensors weight file "
            f"({type(error).__name__}: {first})"
        ) from None
    if not (isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        kind = type(state).__name__
        raise ValueError(f"{path}: expected a state dict of tensors, found a {kind}")
    return state


def load_timm_weights(trunk: nn.Module, name: str, weights_path: str | Path | None) -> Path:
    """Load the weights :func:`find_timm_weights` finds into ``trunk``; returns the file."""
    path = find_timm_weights(trunk, name, weights_path)
    state = read_state_dict(path)
    adapt = _checkpoint_filter(trunk)
    if adapt is not None:
        try:
            state = adapt(state, trunk)
        except Exception as error:  # timm's filters assume the network's own tensors
            raise ValueError(
                f"{path}: not weights of timm's {name} ({type(error).__name__}: {error})"
            ) from None
    own = trunk.state_dict()
    classifier = trunk.pretrained_cfg.get("classifier") or ()
    prefixes = tuple(f"{c}." for c in ([classifier] if isinstance(classifier, str) else classifier))
    state = {k: v for k, v in state.items() if k in own or not k.startswith(prefixes)}
    problems = _mismatches(own, state)
    if problems:
        raise ValueError(f"{path} does not fit timm's {name}: {'; '.join(problems)}")
    trunk.load_state_dict(state, strict=False)  # only BatchNorm step counters may be absent
    log.info("Loaded timm weights of %s from %s", name, path)
    return path


def _checkpoint_filter(trunk: nn.Module) -> Callable[..., dict[str, torch.Tensor]] | None:
    """The ``checkpoint_filter_fn`` of the trunk's timm module, which timm applies to its own
    pretrained files (resizing position embeddings and window tables, converting originals)."""
    return getattr(sys.modules[type(trunk).__module__], "checkpoint_filter_fn", None)


def _mismatches(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into a module whose state dict is ``own``."""
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f"{k} {tuple(state[k].shape)} for {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    found = (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
    return [f"{len(keys)} tensors {what}, e.g. {keys[:3]}" for what, keys in found if keys]
