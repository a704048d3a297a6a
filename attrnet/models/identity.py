"""Identity branch for re-ID: BNNeck, identity classifier and their losses (Luo et al. 2019).

:class:`IdentityBranch` is the one injected part that turns the attribute model into a joint
attribute + identity model (APR, Lin et al. 2019) or, with ``attribute_weight`` 0, a Bag-of-Tricks
re-ID model: its optional :class:`IdentityHead` (cross-entropy on the BNNeck feature), the
batch-hard triplet loss on the pooled embedding, the weights of every term, and the validation
re-ID metric the module updates (built from the objective's config and injected, so the model
package does not depend on the retrieval package).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.core.mixins import HyperparametersMixin
from torch import nn
from torchmetrics import Metric

from attrnet.models.reid_losses import batch_hard_triplet_loss


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


class IdentityBranch(nn.Module, HyperparametersMixin):
    """The identity objective: the total loss is ``attribute_weight * attributes + id_weight *
    cross-entropy + triplet_weight * triplet``.

    The cross-entropy (with ``label_smoothing``) needs ``head``; triplet-only training has no
    head and retrieves with the embedding itself. A head that no loss would train is refused, as
    is a branch without an identity loss. ``metric`` (e.g. the study's re-ID protocol on the
    validation identities) receives the retrieval features of every validation batch.
    """

    def __init__(
        self,
        head: IdentityHead | None,
        attribute_weight: float,
        id_weight: float,
        triplet_weight: float,
        triplet_margin: float | None,
        label_smoothing: float,
        metric: Metric | None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["head", "metric"], logger=False)
        if min(attribute_weight, id_weight, triplet_weight) < 0:
            raise ValueError("identity branch: loss weights must not be negative")
        if id_weight == 0 and triplet_weight == 0:
            raise ValueError(
                "identity branch: id_weight and triplet_weight are both 0; without an identity "
                "loss use objective=attributes"
            )
        if (head is None) != (id_weight == 0):
            raise ValueError(
                "identity branch: the identity cross-entropy (id_weight > 0) needs a head, and a "
                "head needs it (head: null for triplet-only training)"
            )
        self.head = head
        self.metric = metric

    def spec(self) -> dict[str, Any]:
        """The constructor arguments a checkpoint keeps, the head's included (metric excluded)."""
        head = None if self.head is None else dict(self.head.hparams)
        return {**dict(self.hparams), "head": head}

    def feature(self, embedding: torch.Tensor) -> torch.Tensor:
        """The identity retrieval feature: BNNeck output, or the embedding for triplet-only."""
        return embedding if self.head is None else self.head.feature(embedding)

    def losses(self, embedding: torch.Tensor, identities: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted-in terms by name: ``id_loss`` and/or ``triplet_loss`` (unweighted)."""
        hp = self.hparams
        terms: dict[str, torch.Tensor] = {}
        if hp.id_weight > 0:
            _, logits = self.head(embedding)
            terms["id_loss"] = F.cross_entropy(
                logits.float(), identities, label_smoothing=hp.label_smoothing
            )
        if hp.triplet_weight > 0:
            terms["triplet_loss"] = batch_hard_triplet_loss(
                embedding, identities, hp.triplet_margin
            )
        return terms

    def total(self, attribute_loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The joint loss from the attribute loss and :meth:`losses`' terms."""
        hp = self.hparams
        weights = {"id_loss": hp.id_weight, "triplet_loss": hp.triplet_weight}
        total = hp.attribute_weight * attribute_loss
        for name, value in terms.items():
            total = total + weights[name] * value
        return total
