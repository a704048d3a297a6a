"""The one uint8 -> float input normalisation, shared by training, validation and prediction.

The datamodule's batches (``attrnet.data.augment``) and the inference graph
(``attrnet.inference.network.InferenceNetwork``, which the ONNX export traces) both call
:class:`Normalize`, so a model sees bit-identical inputs for the same uint8 image everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """uint8 RGB (N, 3, H, W) -> float32 ``(x / 255 - mean) / std`` per channel.

    Computed as ``x * scale - shift`` with per-channel constants held as buffers (they move
    with the module, so no constant is copied to the device per batch). ``channels_last``
    returns the result in that memory layout (the network's, when it uses channels_last).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {list(mean)}, {list(std)}")
        scale = [1.0 / (255.0 * s) for s in std]
        shift = [m / s for m, s in zip(mean, std, strict=True)]
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 RGB images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        layout = torch.channels_last if channels_last else torch.contiguous_format
        out = images.to(torch.float32, memory_format=layout, copy=True)
        return out.mul_(self.scale).sub_(self.shift)
