"""The study's re-ID protocol as a torchmetrics metric, for validation during training.

One random image per validation identity is the query, the rest the gallery (Euclidean
distance, CMC rank-1 and mAP); images without an identity (label -1, e.g. part of RAP) are left
out. The features, identities and dataset indices are metric states
that torchmetrics concatenates across DDP ranks, so every rank scores the whole set; a row seen
twice (a padding sampler) is counted once.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from attrnet.data.splits import study_reid_protocol
from attrnet.distances import compute_distance
from attrnet.retrieval.rank import evaluate_rank


class StudyReidMetric(Metric):
    """``update(features, identities, indices)`` per batch; ``compute()`` returns
    ``{"reid_rank1", "reid_mAP"}`` (empty when no identity has two images)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, max_rank: int = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_rank = max_rank
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("identities", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")

    def update(
        self, features: torch.Tensor, identities: torch.Tensor, indices: torch.Tensor
    ) -> None:
        self.features.append(features.detach().float())
        self.identities.append(identities.detach().long())
        self.indices.append(indices.detach().long())

    def compute(self) -> dict[str, torch.Tensor]:
        features = dim_zero_cat(self.features).cpu()
        identities = dim_zero_cat(self.identities).cpu()
        indices = dim_zero_cat(self.indices).cpu()
        rows = _first_rows(indices)
        rows = rows[identities[rows] >= 0]  # images without an identity take no part
        features, identities = features[rows], identities[rows].numpy()
        query, gallery = study_reid_protocol(identities)
        if len(query) == 0:
            return {}
        distances = compute_distance(features[query], features[gallery], "euclidean")
        cameras = np.zeros(len(identities), dtype=np.int64)  # one camera: no same-camera rule
        result = evaluate_rank(
            distances,
            identities[query],
            identities[gallery],
            cameras[query],
            cameras[gallery],
            max_rank=min(self.max_rank, len(gallery)),
            protocol="study",
        )
        figures = {"reid_rank1": result.cmc[0], "reid_mAP": result.mAP}
        return {name: torch.tensor(float(v), dtype=torch.float64) for name, v in figures.items()}


def _first_rows(indices: torch.Tensor) -> torch.Tensor:
    """The row of each distinct dataset index's first sight, in ascending index order."""
    order = torch.argsort(indices, stable=True)
    first = torch.ones(len(order), dtype=torch.bool)
    first[1:] = indices[order][1:] != indices[order][:-1]
    return order[first]
