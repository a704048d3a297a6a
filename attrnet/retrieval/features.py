"""Re-ID feature kinds built from a trained model's outputs: attribute logits (the study),
probabilities, the pooled embedding, the identity feature, or a combination.

The outputs come from the one inference path (``attrnet.inference.predict.run_module``);
:func:`network_outputs` names those a kind needs and :func:`reid_features` builds the matrix,
averaged with that of the horizontally flipped images when asked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from attrnet.inference.info import FLIPPED

FEATURE_KINDS = (
    "logits",
    "probabilities",
    "embedding",
    "logits+embedding",
    "identity",
    "identity+logits",
)


def network_outputs(kind: str) -> tuple[str, ...]:
    """The network outputs (``attrnet.inference.info.OUTPUT_NAMES``) that ``kind`` is built from."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"feature kind must be one of {FEATURE_KINDS}, got {kind!r}")
    return tuple(kind.split("+"))


def _combined(values: Mapping[str, torch.Tensor], kind: str) -> torch.Tensor:
    """One image set's features of ``kind`` from its outputs."""
    if kind == "identity+logits":
        identity, logits = values["identity"], values["logits"]
        return torch.cat([F.normalize(identity, dim=1), F.normalize(logits, dim=1)], 1)
    if kind == "logits+embedding":
        logits, embedding = values["logits"], values["embedding"]
        scale = logits.norm(dim=1, keepdim=True)
        return torch.cat([logits, F.normalize(embedding, dim=1) * scale], 1)
    return values[kind]


def reid_features(outputs: Mapping[str, np.ndarray], kind: str, flip: bool = False) -> torch.Tensor:
    """Features (N, D) float32 of ``kind`` from ``run_module`` outputs.

    ``logits+embedding`` concatenates the logits with the L2-normalised embedding scaled to the
    logits' norm, so neither part dominates the Euclidean distance by scale alone.
    ``identity+logits`` concatenates the L2-normalised identity feature and L2-normalised
    logits: both parts have unit length, so each weighs the same in the distance. ``flip``
    averages with the features of the mirrored images (outputs named ``FLIPPED + name``).
    """
    names = network_outputs(kind)
    features = _combined({n: torch.from_numpy(outputs[n]) for n in names}, kind)
    if flip:
        mirrored = _combined({n: torch.from_numpy(outputs[FLIPPED + n]) for n in names}, kind)
        features = (features + mirrored) / 2
    return features
