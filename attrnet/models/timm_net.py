"""Any timm network as an attrnet network: its pooled features feed the attribute head.

``model=timm model.net.name=<timm model name>`` builds ``timm.create_model(name,
num_classes=0)``, whose output is the pooled, pre-classifier feature (the embedding), and adds
the contract's dropout and linear head. timm is an optional extra (``attrnet[timm]``), imported
only when such a network is built.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from attrnet.models.network import AttributeNetwork, check_arguments
from attrnet.models.timm_weights import load_timm_weights


def import_timm() -> ModuleType:
    """The timm package, or a one-line error naming the extra that installs it."""
    try:
        import timm
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "model=timm needs the timm package: pip install 'attrnet[timm]' (or pip install timm)"
        ) from None
    return timm


class TimmAttributeNetwork(AttributeNetwork):
    """A timm network (``name``) with ``num_attributes`` sigmoid logits.

    The defaults are those of ``conf/model/timm.yaml`` (a test keeps them equal).

    Args:
        num_attributes: number of binary attributes A (taken from the data).
        name: a timm model name, optionally with its weight tag
            (``vit_small_patch16_224.augreg_in1k``); ``timm.list_models()`` lists them.
        img_size: (height, width) the network is built for, given to networks whose input size
            is fixed at construction (timm's ``fixed_input_size``: ViT, Swin, ...); convolutional
            networks take any size and ignore it. The config sets it to ``data.image_size``.
        dropout: dropout probability on the pooled embedding before the head.
        drop_path_rate: timm's stochastic depth rate; ``None`` keeps the network's default.
        pretrained: load weights into the timm network: from ``weights_path`` if set, else from
            timm's cache (``attrnet.models.timm_weights``: never downloaded).
        weights_path: a ``.pth`` or ``.safetensors`` state dict of this timm network (with or
            without its ImageNet classifier); position embeddings and window tables are resized
            to ``img_size`` by timm's own checkpoint filter.
        activation_checkpointing: timm's gradient checkpointing, in training mode only. timm
            recomputes every block, so a stage list (ResNet50's setting, e.g. ``[1, 2]`` of
            ``experiment=gpu_4gb``) turns it on as ``True`` does.
        channels_last: train in the channels_last memory format: true, false or ``"auto"`` (on
            CUDA).
        compile: ``torch.compile`` the timm network when a fit starts, or ``"reduce-overhead"``:
            also in CUDA graphs (CUDA only); parameter names in checkpoints stay.
    """

    def __init__(
        self,
        num_attributes: int,
        name: str,
        img_size: Sequence[int] | None = None,
        dropout: float = 0.0,
        drop_path_rate: float | None = None,
        pretrained: bool = False,
        weights_path: str | Path | None = None,
        activation_checkpointing: bool | Sequence[int] = False,
        channels_last: bool | str = "auto",
        compile: bool | str = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        check_arguments(num_attributes, channels_last, compile)
        if img_size is not None and (len(img_size) != 2 or min(img_size) < 1):
            raise ValueError(f"img_size must be [height, width], got {list(img_size)}")
        self.trunk = create_trunk(name, img_size, drop_path_rate)
        if pretrained:
            load_timm_weights(self.trunk, name, weights_path)
        self.checkpointing = _checkpointing_on(activation_checkpointing)
        if self.checkpointing:
            _check_checkpointing(self.trunk, name)
        self.embedding_dim = embedding_width(self.trunk)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.embedding_dim, num_attributes)
        self.channels_last = channels_last
        self.compile_setting = compile  # applied when a fit starts (compile_for)

    def _compile(self, mode: str) -> None:
        """Compiled in place: the parameters keep their names."""
        self.trunk.compile(mode=mode)

    def train(self, mode: bool = True) -> TimmAttributeNetwork:
        """Training mode recomputes the trunk's blocks in backward when checkpointing is on;
        evaluation and export run it plainly."""
        super().train(mode)
        if self.checkpointing:
            self.trunk.set_grad_checkpointing(mode)
        return self

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """timm's pooled, pre-classifier features (B, ``embedding_dim``)."""
        return self.trunk(images)


def create_trunk(
    name: str, img_size: Sequence[int] | None, drop_path_rate: float | None
) -> nn.Module:
    """``timm.create_model(name, num_classes=0)`` with random weights, built for ``img_size``
    when its input size is fixed; an unknown name fails with the closest known ones."""
    timm = import_timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.75)
        hint = f"did you mean {', '.join(close)}?" if close else "timm.list_models() lists them"
        raise ValueError(f"model.net.name={name!r} is not a timm model; {hint}")
    options: dict[str, object] = {}
    default = timm.models.get_pretrained_cfg(name)
    if img_size is not None and default is not None and default.fixed_input_size:
        options["img_size"] = tuple(int(s) for s in img_size)
    if drop_path_rate is not None:
        options["drop_path_rate"] = float(drop_path_rate)
    return timm.create_model(name, pretrained=False, num_classes=0, **options)


def embedding_width(trunk: nn.Module) -> int:
    """Width of the trunk's output with ``num_classes=0``: the pre-logits width when the network
    has a hidden head layer (timm's ``head_hidden_size``), else its ``num_features``."""
    return int(getattr(trunk, "head_hidden_size", None) or trunk.num_features)


def _checkpointing_on(setting: bool | Sequence[int]) -> bool:
    """``True``, ``False`` or a (ResNet) stage list; timm checkpoints all blocks or none."""
    if isinstance(setting, bool):
        return setting
    if isinstance(setting, Sequence) and not isinstance(setting, str):
        return len(setting) > 0
    raise ValueError(f"activation_checkpointing must be true, false or a list, got {setting!r}")


def _check_checkpointing(trunk: nn.Module, name: str) -> None:
    """Refuse ``activation_checkpointing`` for a timm network that cannot do it."""
    try:
        trunk.set_grad_checkpointing(True)
    except (AssertionError, NotImplementedError):
        raise ValueError(
            f"timm's {name} does not support gradient checkpointing; "
            "set model.net.activation_checkpointing=false"
        ) from None
    trunk.set_grad_checkpointing(False)  # switched on by train(): training mode only
