"""Re-ID features of a trained model: attribute logits (the study), identity feature, or both.

The model is any module with ``embed(images) -> (B, D)``, ``head(embedding) -> logits`` and,
for identity features, ``identity_feature(embedding)``
(``attrnet.models.module.AttributeModule``); features are computed batched, without gradients,
optionally averaged with those of the horizontally flipped image.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

FEATURE_KINDS = (
    "logits",
    "probabilities",
    "embedding",
    "logits+embedding",
    "identity",
    "identity+logits",
)


def _features(model: torch.nn.Module, images: torch.Tensor, kind: str) -> torch.Tensor:
    embedding = model.embed(images)
    if kind == "embedding":
        return embedding
    if kind == "identity":
        return model.identity_feature(embedding)
    logits = model.head(embedding)
    if kind == "logits":
        return logits
    if kind == "probabilities":
        return torch.sigmoid(logits)
    if kind == "identity+logits":
        identity = model.identity_feature(embedding)
        return torch.cat([F.normalize(identity, dim=1), F.normalize(logits, dim=1)], 1)
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
    ``identity+logits`` concatenates the L2-normalised identity feature and L2-normalised
    logits: both parts have unit length, so each weighs the same in the distance.
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
