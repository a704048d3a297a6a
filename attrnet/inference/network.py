"""The trained network as one inference graph.

:class:`InferenceNetwork` puts the preprocessing (uint8 -> float, normalisation with the
checkpoint's mean and std by :class:`attrnet.data.normalize.Normalize`, as training does) and
the requested outputs around an ``AttributeModule``; the ONNX export traces exactly this graph
and ``attrnet.inference.predict.run_module`` runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from attrnet.data.normalize import Normalize
from attrnet.inference.info import OUTPUT_NAMES, ModelInfo
from attrnet.models.module import AttributeModule


def model_info(module: AttributeModule) -> ModelInfo:
    """The :class:`ModelInfo` of a loaded module (names, size, normalisation, outputs)."""
    outputs = OUTPUT_NAMES if module.identity is not None else OUTPUT_NAMES[:3]
    spec = module.spec
    return ModelInfo(
        attribute_names=spec.attribute_names,
        image_size=spec.image_size,
        mean=spec.mean,
        std=spec.std,
        threshold=module.threshold,
        outputs=outputs,
    )


class InferenceNetwork(nn.Module):
    """uint8 RGB images (N, 3, H, W) -> the requested outputs, as a tuple in ``outputs`` order.

    The images are normalised by the training pipeline's own :class:`Normalize`, so a model
    sees here exactly what validation showed it. ``outputs`` are names of
    ``attrnet.inference.info.OUTPUT_NAMES``.
    """

    def __init__(self, module: AttributeModule, info: ModelInfo, outputs: Sequence[str]) -> None:
        super().__init__()
        missing = [name for name in outputs if name not in info.outputs]
        if missing:
            raise ValueError(
                f"outputs {missing} are not available; this model has {list(info.outputs)}"
                + (" (no identity branch)" if "identity" in missing else "")
            )
        self.module = module
        self.outputs = tuple(outputs)
        self.normalize = Normalize(info.mean, info.std)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedding = self.module.embed(self.normalize(images))
        values: dict[str, torch.Tensor] = {"embedding": embedding}
        if {"logits", "probabilities"} & set(self.outputs):
            values["logits"] = self.module.head(embedding)
            values["probabilities"] = torch.sigmoid(values["logits"])
        if "identity" in self.outputs:
            values["identity"] = self.module.identity_feature(embedding)
        return tuple(values[name] for name in self.outputs)
