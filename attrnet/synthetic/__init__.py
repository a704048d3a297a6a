"""The embedded default dataset: a synthetic Market-1501 rendered from a seed (see ``market``)."""
