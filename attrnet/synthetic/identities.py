"""Identity attribute vectors: a small Bayesian network whose conditional tables are the
counts of the real Market-1501 train split (``market_attribute.mat``, 751 identities), baked in
because the real file is not redistributable."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from attrnet.attributes import ANNOTATION_FIELDS, LOWER_COLOURS, UPPER_COLOURS

#: Nodes of the sampling network, in sampling order: (name, parents, number of states).
#: Binary fields and age have state = code - 1; ``carry`` is none/backpack/bag/handbag (at most
#: one of the three is marked in Market-1501); ``upcolour``/``downcolour`` index
#: ``UPPER_COLOURS``/``LOWER_COLOURS`` with one extra last state for "no colour" (multicolor).
NETWORK: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("gender", (), 2),
    ("age", ("gender",), 4),
    ("clothes", ("gender",), 2),
    ("hair", ("gender", "clothes"), 2),
    ("down", ("clothes", "age"), 2),
    ("up", ("gender",), 2),
    ("hat", (), 2),
    ("carry", ("gender", "age"), 4),
    ("upcolour", ("gender",), len(UPPER_COLOURS) + 1),
    ("downcolour", ("gender", "clothes"), len(LOWER_COLOURS) + 1),
)
CARRY_FIELDS = ("backpack", "bag", "handbag")

#: Counts of each node's states per parent configuration in the real train split (751 ids).
#: The parents' strongest links in the real labels are kept: dress only for women, long hair
#: mostly women (426 of 431 men short-haired), short lower clothing mostly teenagers and
#: dresses, bags carried by women, backpacks by teenagers, colours by gender and garment.
REAL_TRAIN_COUNTS: dict[str, dict[tuple[int, ...], tuple[int, ...]]] = {
    "gender": {(): (431, 320)},
    "age": {(0,): (8, 315, 101, 7), (1,): (6, 254, 59, 1)},
    "clothes": {(0,): (0, 431), (1,): (110, 210)},
    "hair": {(0, 0): (0, 0), (0, 1): (426, 5), (1, 0): (19, 91), (1, 1): (61, 149)},
    "down": {
        (0, 0): (0, 4), (0, 1): (12, 74), (0, 2): (2, 17), (0, 3): (1, 0),
        (1, 0): (3, 7), (1, 1): (157, 326), (1, 2): (112, 29), (1, 3): (7, 0),
    },
    "up": {(0,): (11, 420), (1,): (28, 292)},
    "hat": {(): (731, 20)},
    "carry": {
        (0, 0): (8, 0, 0, 0), (0, 1): (135, 122, 33, 25),
        (0, 2): (48, 6, 29, 18), (0, 3): (6, 0, 1, 0),
        (1, 0): (6, 0, 0, 0), (1, 1): (62, 69, 99, 24),
        (1, 2): (16, 2, 23, 18), (1, 3): (0, 0, 0, 1),
    },
    "upcolour": {
        (0,): (69, 115, 38, 15, 23, 62, 35, 35, 39),
        (1,): (44, 113, 40, 15, 13, 24, 11, 21, 39),
    },
    "downcolour": {
        (0, 0): (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        (0, 1): (185, 24, 2, 0, 0, 89, 68, 5, 46, 12),
        (1, 0): (28, 22, 15, 0, 8, 8, 11, 5, 4, 9),
        (1, 1): (80, 12, 12, 2, 2, 26, 44, 4, 19, 9),
    },
}

#: Number of identities of the real train split, and its positives per target.
REAL_TRAIN_SIZE = 751
REAL_TRAIN_POSITIVES: dict[str, int] = {
    "young": 14, "teenager": 569, "adult": 160, "old": 8,
    "backpack": 199, "bag": 185, "handbag": 86, "clothes": 641, "down": 457, "up": 712,
    "hair": 245, "hat": 20, "gender": 320,
    "upblack": 113, "upwhite": 228, "upred": 78, "uppurple": 30, "upyellow": 36, "upgray": 86,
    "upblue": 46, "upgreen": 56, "upmulticolor": 78,
    "downblack": 293, "downwhite": 58, "downpink": 29, "downpurple": 2, "downyellow": 10,
    "downgray": 123, "downblue": 123, "downgreen": 14, "downbrown": 69, "downmulticolor": 30,
}


def _colour_state(fields: pd.DataFrame, colours: tuple[str, ...]) -> np.ndarray:
    """Index of the marked colour per row, ``len(colours)`` where none is marked."""
    marked = fields[list(colours)].to_numpy(dtype=int) == 2
    return np.where(marked.any(axis=1), marked.argmax(axis=1), len(colours))


def identity_states(fields: pd.DataFrame) -> dict[str, np.ndarray]:
    """Network node states (0-based) of annotated fields in 1/2 coding.

    ``carry`` takes the last marked of backpack, bag, handbag (Market-1501 marks at most one).
    """
    states = {
        name: fields[name].to_numpy(dtype=int) - 1
        for name, _, _ in NETWORK if name in ANNOTATION_FIELDS
    }
    carry = np.zeros(len(fields), dtype=int)
    for state, name in enumerate(CARRY_FIELDS, start=1):
        carry[fields[name].to_numpy(dtype=int) == 2] = state
    states["carry"] = carry
    states["upcolour"] = _colour_state(fields, UPPER_COLOURS)
    states["downcolour"] = _colour_state(fields, LOWER_COLOURS)
    return states


def _parent_rows(
    parents: tuple[str, ...], states: Mapping[str, np.ndarray], count: int
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Every configuration of ``parents`` with the mask of rows of ``states`` that have it."""
    sizes = {name: size for name, _, size in NETWORK}
    for config in itertools.product(*(range(sizes[p]) for p in parents)):
        rows = np.ones(count, dtype=bool)
        for parent, value in zip(parents, config, strict=True):
            rows &= states[parent] == value
        yield config, rows


def network_counts(fields: pd.DataFrame) -> dict[str, dict[tuple[int, ...], tuple[int, ...]]]:
    """Per node, the counts of its states for every parent configuration (the baked table).

    Used to derive ``REAL_TRAIN_COUNTS`` from the real file and to check it against it.
    """
    states = identity_states(fields)
    return {
        name: {
            config: tuple(int(c) for c in np.bincount(states[name][rows], minlength=size))
            for config, rows in _parent_rows(parents, states, len(fields))
        }
        for name, parents, size in NETWORK
    }


def _conditional(name: str, config: tuple[int, ...]) -> np.ndarray:
    """P(node state | parent configuration) from the baked counts.

    A configuration never seen in the real data (e.g. the lower colour of a man's dress, which
    the network never samples) falls back to the node's pooled counts.
    """
    table = REAL_TRAIN_COUNTS[name]
    counts = np.asarray(table[config], dtype=np.float64)
    if counts.sum() == 0:
        counts = np.sum([np.asarray(c, dtype=np.float64) for c in table.values()], axis=0)
    return counts / counts.sum()


def _states_to_fields(states: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The 27 annotated fields (1/2 coding, age 1..4, uint8) of sampled node states."""
    fields = {name: states[name] + 1 for name, _, _ in NETWORK if name in ANNOTATION_FIELDS}
    for state, name in enumerate(CARRY_FIELDS, start=1):
        fields[name] = np.where(states["carry"] == state, 2, 1)
    for group, colours in (("upcolour", UPPER_COLOURS), ("downcolour", LOWER_COLOURS)):
        for index, name in enumerate(colours):
            fields[name] = np.where(states[group] == index, 2, 1)
    return pd.DataFrame({name: fields[name] for name in ANNOTATION_FIELDS}).astype(np.uint8)


def _systematic(probabilities: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` states whose frequencies match ``probabilities`` as closely as counts allow.

    Systematic sampling (evenly spaced points with one random offset through the cumulative
    distribution) and a shuffle: unlike independent draws, even a split of 200 identities
    shows the real rates up to rounding, and rare states still appear by chance.
    """
    points = (rng.random() + np.arange(count)) / count
    states = np.searchsorted(np.cumsum(probabilities), points, side="right")
    return rng.permutation(np.minimum(states, len(probabilities) - 1))


def sample_identity_attributes(count: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``count`` identities' 27 annotated fields following the real label statistics.

    Nodes are drawn in ``NETWORK`` order, within each configuration of the already drawn
    parents from the baked conditional, so the marginals and the kept co-occurrences match
    the real train split.
    """
    states: dict[str, np.ndarray] = {}
    for name, parents, _ in NETWORK:
        drawn = np.zeros(count, dtype=np.int64)
        for config, rows in _parent_rows(parents, states, count):
            drawn[rows] = _systematic(_conditional(name, config), int(rows.sum()), rng)
        states[name] = drawn
    return _states_to_fields(states)

