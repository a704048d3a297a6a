"""attrnet: pedestrian attribute recognition and attribute-based re-ID on Market-1501."""

__version__ = "0.1.0"
