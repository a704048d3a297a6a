"""Join identity-level labels to image tables, with the checks the design asks for."""

from __future__ import annotations

import warnings

import pandas as pd

from attrnet.attributes import encode
from attrnet.data.errors import DataError
from attrnet.data.market import DISTRACTOR_ID, JUNK_ID


def attach_identity_labels(images: pd.DataFrame, fields: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add the 32 binary targets of each image's identity (``fields``: 27 fields by person_id).

    Junk and distractor images are dropped (they carry no labels). An image whose identity has
    no labels is an error; labels with no images are reported as a warning with counts.
    """
    images = images[~images["person_id"].isin((JUNK_ID, DISTRACTOR_ID))]
    targets = encode(fields, source)
    unlabelled = images.loc[~images["person_id"].isin(targets.index)]
    if len(unlabelled):
        first = unlabelled.iloc[0]
        raise DataError(
            f"{first['path']}: identity {first['person_id']} has no labels in {source} "
            f"({unlabelled['person_id'].nunique()} identities, {len(unlabelled)} images unlabelled)"
        )
    unused = targets.index.difference(images["person_id"].unique())
    if len(unused):
        warnings.warn(
            f"{source}: {len(unused)} of {len(targets)} labelled identities have no images "
            f"(e.g. {list(unused[:5])}); they are ignored",
            stacklevel=2,
        )
    joined = images.join(targets, on="person_id")
    return joined.reset_index(drop=True)
