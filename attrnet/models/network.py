"""The contract between a network and the LightningModule, and how a checkpoint names its network.

Any backbone works with attrnet if it is an :class:`AttributeNetwork`: it maps images to a pooled
embedding (``forward_features``) and an embedding to attribute logits (``classify``), keeps its
constructor arguments in ``hparams`` and says how wide its embedding is (``embedding_dim``).
Checkpoints store ``{"_target_": <class path>, **hparams}``, so :func:`build_network` rebuilds
any such class; only subclasses of :class:`AttributeNetwork` inside ``attrnet`` are accepted,
as a checkpoint is data, not code.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.core.mixins import HyperparametersMixin
from torch import nn


class AttributeNetwork(nn.Module, HyperparametersMixin):
    """Base class of attrnet's networks: images (B, 3, H, W) -> embedding (B, D) -> logits (B, A).

    Subclasses set ``embedding_dim``, ``head`` (the ``nn.Linear`` to A attributes) and
    ``dropout``, implement ``forward_features`` and call ``save_hyperparameters`` in their
    constructor. ``channels_last`` is the memory format the module trains in (``auto``: on CUDA);
    ``compile_setting`` (the ``compile`` argument) how the module compiles the network when a fit
    starts on a device (see :func:`compile_mode`), through the subclass's ``_compile``.
    """

    embedding_dim: int
    head: nn.Linear
    dropout: nn.Module
    channels_last: bool | str = False
    compile_setting: bool | str = False
    _compiled = False

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled embedding (B, ``embedding_dim``)."""
        raise NotImplementedError

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Attribute logits of a pooled embedding (dropout is off in eval mode)."""
        return self.head(self.dropout(embedding))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Attribute logits (B, A)."""
        return self.classify(self.forward_features(images))

    @property
    def num_attributes(self) -> int:
        return self.head.out_features

    def spec(self) -> dict[str, Any]:
        """``{"_target_": class path, **hparams}``: what a checkpoint keeps to rebuild it."""
        cls = type(self)
        return {"_target_": f"{cls.__module__}.{cls.__qualname__}", **dict(self.hparams)}

    def uses_channels_last(self, device: torch.device) -> bool:
        """Whether to train in channels_last on ``device``."""
        return resolve_channels_last(self.channels_last, device)

    def compile_for(self, device: torch.device) -> str | None:
        """Compile the network for a fit on ``device`` as its ``compile`` setting says (once);
        returns the ``torch.compile`` mode used, or None."""
        mode = compile_mode(self.compile_setting, device)
        if mode is not None and not self._compiled:
            self._compile(mode)
            self._compiled = True
        return mode

    def _compile(self, mode: str) -> None:
        """``torch.compile`` the network's trunk in ``mode``, keeping its parameters' names."""
        raise NotImplementedError


#: The ``compile`` settings: off, ``torch.compile``'s default mode, or its CUDA-graph mode.
COMPILE_SETTINGS = (False, True, "reduce-overhead")


def compile_mode(setting: bool | str, device: torch.device) -> str | None:
    """The ``torch.compile`` mode of a ``compile`` setting on ``device``: None when off;
    ``reduce-overhead`` captures the trunk's fixed-shape forward and backward in CUDA graphs, so
    it applies on CUDA only (elsewhere there is no graph to capture and nothing is compiled)."""
    if setting == "reduce-overhead":
        return setting if device.type == "cuda" else None
    return "default" if setting else None


def check_arguments(num_attributes: int, channels_last: bool | str, compile: bool | str) -> None:
    """The checks of the contract's own constructor arguments, which every network makes."""
    if num_attributes < 1:
        raise ValueError(f"num_attributes must be positive, got {num_attributes}")
    if channels_last not in (True, False, "auto"):
        raise ValueError(f"channels_last must be true, false or 'auto', got {channels_last!r}")
    if compile not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be true, false or 'reduce-overhead', got {compile!r}")


def resolve_channels_last(setting: bool | str, device: torch.device) -> bool:
    """A ``channels_last`` setting on ``device``: ``auto`` is on for CUDA only."""
    return device.type == "cuda" if setting == "auto" else bool(setting)


def network_class(target: str) -> type[AttributeNetwork]:
    """The network class a checkpoint names; anything but an attrnet network is refused."""
    module_name, _, name = target.rpartition(".")
    if not module_name.startswith("attrnet."):
        raise ValueError(f"network {target!r}: only attrnet's networks can be rebuilt")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, AttributeNetwork)):
        raise ValueError(f"network {target!r} is not an attrnet AttributeNetwork")
    return cls


def build_network(spec: Mapping[str, Any], **changes: Any) -> AttributeNetwork:
    """The network ``spec`` (from :meth:`AttributeNetwork.spec`) describes, with ``changes``."""
    arguments = {k: v for k, v in spec.items() if k != "_target_"}
    return network_class(spec["_target_"])(**{**arguments, **changes})
