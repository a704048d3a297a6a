"""ResNet50 attribute classifier: torchvision trunk, optional CBAM attention, linear head."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.models import resnet50

from attrnet.models.attention import CBAM
from attrnet.models.network import AttributeNetwork, check_arguments
from attrnet.models.weights import load_imagenet_weights

EMBEDDING_DIM = 2048
STAGE_CHANNELS: tuple[int, ...] = (256, 512, 1024, 2048)


class AttributeResNet50(AttributeNetwork):
    """ResNet50 with ``num_attributes`` sigmoid logits, optionally with CBAM after some stages.

    Its constructor arguments are kept in ``hparams``, so a checkpoint can rebuild it.
    The defaults are those of ``conf/model/resnet50.yaml`` (a test keeps them equal).

    Args:
        num_attributes: number of binary attributes A (taken from the data).
        attention: insert a CBAM block after each stage listed in ``attention_stages``.
        attention_stages: stages (1 = layer1 ... 4 = layer4) followed by CBAM. Default ``[4]``:
            attention on the final 2048-channel map, right before pooling and the head, which is
            where the study put its channel attention.
        attention_reduction: channel-MLP reduction ratio of the CBAM blocks.
        last_stride: stride of layer4; 1 is the re-ID trick that doubles the final map size.
        dropout: dropout probability on the pooled embedding before the head.
        pretrained: load ImageNet weights into the trunk (offline, see ``weights.py``).
        weights_path: explicit weight file (used when ``pretrained``); if None, torchvision's
            cache is searched.
        activation_checkpointing: recompute stages in backward to save memory (only in
            training mode with grad enabled): ``True`` all four, or a list of stages (1..4).
            The early stages hold most of the activations at a quarter of the compute, so
            ``[1, 2]`` saves much of the memory for little time. BatchNorm running statistics of
            those stages are then updated twice per step, which only speeds up their average.
        zero_init_residual: start each residual branch's last BatchNorm at zero, so a randomly
            initialised network begins as a shallow one and trains faster (Goyal et al. 2017).
        channels_last: train in the channels_last memory format: true, false or ``"auto"`` (on
            CUDA, where it speeds up mixed-precision convolutions).
        compile: ``torch.compile`` the convolutional trunk when a fit starts (GPU: faster steps
            after a warm-up), or ``"reduce-overhead"``: also capture its forward and backward in
            CUDA graphs (CUDA only; nothing is compiled elsewhere). Parameter names stay.
    """

    embedding_dim = EMBEDDING_DIM

    def __init__(
        self,
        num_attributes: int,
        attention: bool = False,
        attention_stages: Sequence[int] = (4,),
        attention_reduction: int = 16,
        last_stride: int = 2,
        dropout: float = 0.0,
        pretrained: bool = False,
        weights_path: str | Path | None = None,
        activation_checkpointing: bool | Sequence[int] = False,
        zero_init_residual: bool = True,
        channels_last: bool | str = "auto",
        compile: bool | str = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        check_arguments(num_attributes, channels_last, compile)
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        stages = sorted(set(attention_stages)) if attention else []
        if any(s not in (1, 2, 3, 4) for s in stages):
            raise ValueError(f"attention_stages must be among 1..4, got {list(attention_stages)}")

        self.trunk = resnet50(weights=None, zero_init_residual=zero_init_residual)
        self.trunk.fc = nn.Identity()  # replaced by self.head; no unused parameters under DDP
        if last_stride == 1:
            block = self.trunk.layer4[0]
            block.conv2.stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        if pretrained:
            load_imagenet_weights(self.trunk, weights_path)

        self.attention = nn.ModuleDict(
            {f"layer{s}": CBAM(STAGE_CHANNELS[s - 1], attention_reduction) for s in stages}
        )
        self.checkpointed_stages = _checkpointed_stages(activation_checkpointing)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(EMBEDDING_DIM, num_attributes)
        self.channels_last = channels_last
        self.compile_setting = compile  # applied when a fit starts (compile_for)

    def _compile(self, mode: str) -> None:
        """The bound method is compiled; the parameters keep their names."""
        self.feature_map = torch.compile(self.feature_map, mode=mode)

    def _stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """ResNet stage ``index`` (1..4) followed by its CBAM block, if any."""
        name = f"layer{index}"
        x = getattr(self.trunk, name)(x)
        if name in self.attention:
            x = self.attention[name](x)
        return x

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Final feature map (B, 2048, H/32, W/32), or H/16 x W/16 with ``last_stride=1``."""
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        recompute = self.training and torch.is_grad_enabled()
        for index in range(1, 5):
            if recompute and index in self.checkpointed_stages:
                x = checkpoint(self._stage, index, x, use_reentrant=False)
            else:
                x = self._stage(index, x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled embedding (B, 2048), e.g. for re-ID features."""
        return torch.flatten(self.trunk.avgpool(self.feature_map(x)), 1)


def _checkpointed_stages(setting: bool | Sequence[int]) -> frozenset[int]:
    """The stages to recompute in backward: ``True`` all, ``False`` none, or a list of 1..4."""
    if isinstance(setting, bool):
        return frozenset(range(1, 5)) if setting else frozenset()
    stages = frozenset(int(s) for s in setting)
    if not stages <= {1, 2, 3, 4}:
        raise ValueError(
            f"activation_checkpointing must be true, false or stages among 1..4, got {setting!r}"
        )
    return stages
