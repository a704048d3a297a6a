"""What a deployed model needs besides its weights: attribute names, input size, normalisation.

A checkpoint yields it from the module's hyperparameters; an exported ONNX file carries it as
JSON in its metadata (key ``attrnet``), so either can be used without any other file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

#: Every output a model can give, in graph order; ``identity`` only with an identity branch.
OUTPUT_NAMES: tuple[str, ...] = ("logits", "probabilities", "embedding", "identity")

#: Prefix of an output computed on the horizontally flipped images (``run_module(flip=True)``).
FLIPPED = "flipped:"

#: ONNX metadata key that holds :class:`ModelInfo` as JSON.
METADATA_KEY = "attrnet"


@dataclass(frozen=True)
class ModelInfo:
    """Attribute names (output order), training input size (height, width), the per-channel
    mean and standard deviation the images were normalised with (on the 0..1 scale), the
    decision threshold, and the outputs the model has."""

    attribute_names: tuple[str, ...]
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    threshold: float
    outputs: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        """Parse :meth:`to_json` output; raises ``ValueError`` on missing or malformed fields."""
        try:
            data = json.loads(text)
            info = cls(
                attribute_names=tuple(str(n) for n in data["attribute_names"]),
                image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                threshold=float(data["threshold"]),
                outputs=tuple(str(o) for o in data["outputs"]),
            )
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"malformed attrnet model metadata ({error!r})") from None
        unknown = set(info.outputs) - set(OUTPUT_NAMES)
        if unknown or len(info.mean) != 3 or len(info.std) != 3:
            raise ValueError(f"malformed attrnet model metadata: {text[:200]}")
        return info
