"""What a deployed model needs besides its weights: attribute names, input size, normalisation.

A checkpoint yields it from the module's hyperparameters; an exported ONNX file carries it as
JSON in its metadata (key ``attrnet``), so either can be used without any other file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from attrnet.models.spec import ModelSpec

#: Every output a model can give, in graph order; ``identity`` only with an identity branch.
OUTPUT_NAMES: tuple[str, ...] = ("logits", "probabilities", "embedding", "identity")

#: Prefix of an output computed on the horizontally flipped images (``run_module(flip=True)``).
FLIPPED = "flipped:"

#: ONNX metadata key that holds :class:`ModelInfo` as JSON.
METADATA_KEY = "attrnet"


@dataclass(frozen=True)
class ModelInfo(ModelSpec):
    """A model's :class:`~attrnet.models.spec.ModelSpec` (attribute names in output order, input
    size, normalisation), its decision threshold, and the outputs it has."""

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
                attribute_names=tuple(data["attribute_names"]),
                image_size=tuple(data["image_size"]),
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
                threshold=float(data["threshold"]),
                outputs=tuple(str(o) for o in data["outputs"]),
            )
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"malformed attrnet model metadata ({error!r})") from None
        unknown = set(info.outputs) - set(OUTPUT_NAMES)
        if unknown or len(info.image_size) != 2 or len(info.mean) != 3 or len(info.std) != 3:
            raise ValueError(f"malformed attrnet model metadata: {text[:200]}")
        return info
