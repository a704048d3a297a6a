"""What a trained model reads and writes, taken from its training data: the attribute names (in
output order), the input size and the normalisation of its images. Prediction, re-ID and export
need exactly this besides the weights, so the module keeps it in its checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """Attribute names, the training input size (height, width), and the per-channel mean and
    standard deviation (on the 0..1 scale) the images were normalised with."""

    attribute_names: tuple[str, ...]
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.attribute_names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"attribute names must be non-empty and unique, got {list(names)}")
        object.__setattr__(self, "attribute_names", names)
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelSpec:
        return cls(**{k: values[k] for k in ("attribute_names", "image_size", "mean", "std")})

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (checkpoint hyper-parameters, YAML)."""
        return {k: list(v) for k, v in asdict(self).items()}

