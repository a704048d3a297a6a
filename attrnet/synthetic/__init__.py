"""The embedded default dataset: a synthetic Market-1501 rendered from a seed.

``market`` writes and caches the set, ``identities`` samples the attribute vectors, ``look``,
``camera``, ``paint`` and ``render`` draw the pictures, ``grid`` shows samples.
"""

from attrnet.synthetic.grid import save_sample_grid
from attrnet.synthetic.market import (
    SyntheticParams,
    default_cache_dir,
    ensure_synthetic_market,
    generate_synthetic_market,
)

__all__ = [
    "SyntheticParams",
    "default_cache_dir",
    "ensure_synthetic_market",
    "generate_synthetic_market",
    "save_sample_grid",
]
