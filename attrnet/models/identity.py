"""Identity branch for re-ID: BNNeck and a bias-free identity classifier (Luo et al. 2019)."""

from __future__ import annotations

import torch
from lightning.pytorch.core.mixins import HyperparametersMixin
from torch import nn


class IdentityHead(nn.Module, HyperparametersMixin):
    """Maps the pooled embedding to identity logits, through a BatchNorm "neck" if ``bnneck``.

    With BNNeck the triplet loss acts on the embedding before the BatchNorm and the
    cross-entropy after it; the normalised feature is the one used for retrieval. The neck's
    shift is frozen at zero and the classifier has no bias, as in Bag of Tricks. The
    constructor arguments are kept in ``hparams``, so a checkpoint can rebuild it.
    """

    def __init__(self, embedding_dim: int, num_identities: int, bnneck: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        if num_identities < 2:
            raise ValueError(f"an identity head needs at least 2 identities, got {num_identities}")
        self.neck = nn.BatchNorm1d(embedding_dim) if bnneck else nn.Identity()
        if bnneck:
            self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(embedding_dim, num_identities, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def feature(self, embedding: torch.Tensor) -> torch.Tensor:
        """The retrieval feature: the embedding after the neck (B, D)."""
        return self.neck(embedding)

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(feature, identity logits)`` of a pooled embedding."""
        feature = self.feature(embedding)
        return feature, self.classifier(feature)
