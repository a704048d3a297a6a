"""Seeds derived from keys, for randomness that depends only on (seed, epoch, rank)."""

from __future__ import annotations

import numpy as np


def derived_seed(*keys: int) -> int:
    """A 32-bit seed that depends only on ``keys`` (e.g. seed, epoch, rank), via NumPy's
    ``SeedSequence``: nearby keys give unrelated streams."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
