"""Re-ID features from an attribute model: logits (the study), probabilities, embedding, or both.

The model is any module with ``embed(images) -> (B, D)`` and ``head(embedding) -> logits``
(``attrnet.models.module.AttributeModule``); features are computed batched, without gradients,
optionally averaged with those of the horizontally flipped image.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

FEATURE_KINDS = ("logits", "probabilities", "embedding", "logits+embedding")


def _features(model: torch.nn.Module, images: torch.Tensor, kind: str) -> torch.Tensor:
    embedding = model.embed(images)
    if kind == "embedding":
        return embedding
    logits = model.head(embedding)
    if kind == "logits":
        return logits
    if kind == "probabilities":
        return torch.sigmoid(logits)
    return torch.cat([logits, F.normalize(embedding, dim=1) * logits.norm(dim=1, keepdim=True)], 1)


@torch.no_grad()
def extract_features(
    model: torch.nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    kind: str = "logits",
    flip: bool = False,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Features (N, D) in float32 on the CPU for every ``batch["image"]`` of ``batches``.

    ``logits+embedding`` concatenates the logits with the L2-normalised embedding scaled to the
    logits' norm, so neither part dominates the Euclidean distance by scale alone.
    """
    if kind not in FEATURE_KINDS:
        raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
    model = model.to(device).eval()
    chunks = []
    for batch in batches:
        images = batch["image"].to(device, non_blocking=True)
        features = _features(model, images, kind).float()
        if flip:
            features = (features + _features(model, images.flip(-1), kind).float()) / 2
        chunks.append(features.cpu())
    return torch.cat(chunks)
