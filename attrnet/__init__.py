"""attrnet: pedestrian attribute recognition and attribute-based re-ID on Market-1501.

``attrnet.load(path)`` opens a trained model for inference (``attrnet.inference.api``); it is
imported on first use, so ``import attrnet`` stays light and never imports torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Model", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from attrnet.inference import api

        return getattr(api, name)
    raise AttributeError(f"module 'attrnet' has no attribute {name!r}")
