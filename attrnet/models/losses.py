"""Weighted binary cross-entropy for multi-label attribute recognition.

Each attribute ``a`` with training-split positive ratio ``p_a`` gets a weight for its positive
targets and one for its negative targets; the loss is

    L = mean_{(i,a) known} -( w_pos[a] y_ia log s(x_ia) + w_neg[a] (1 - y_ia) log(1 - s(x_ia)) )

with ``s`` the sigmoid. Weights are computed on the training split only (never on validation).
A target may be unknown (NaN: RAP's label 2, an empty generic-CSV cell): unknown cells are left
out of the positive ratios and of the loss, which is the weighted sum over the known cells divided
by their number (the plain mean when every cell is known).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WeightStrategy = Literal[
    "none", "inverse_frequency", "sqrt_inverse_frequency", "deepmar", "sqrt_deepmar"
]
STRATEGIES: tuple[str, ...] = get_args(WeightStrategy)

#: Default clamp for positive ratios: ``p`` is clipped to ``[eps, 1 - eps]`` before weighting.
RATIO_EPS = 1e-3


def positive_ratio(targets: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Fraction of positives among the known targets per attribute, shape (A,), from targets of
    shape (N, A) holding 0, 1 or NaN (unknown). An attribute without known targets is an error."""
    t = torch.as_tensor(targets)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"targets must have shape (N, A) with N > 0, got {tuple(t.shape)}")
    t = t.detach().to("cpu", torch.float64)
    known = ~t.isnan()
    if not torch.all((t == 0) | (t == 1) | ~known):
        raise ValueError("targets must contain only 0, 1 and NaN (unknown) attribute labels")
    counts = known.sum(dim=0)
    if (counts == 0).any():
        column = int(torch.nonzero(counts == 0)[0, 0])
        raise ValueError(f"attribute column {column} has no known target (all unknown)")
    return (t.nan_to_num(0.0).sum(dim=0) / counts).float()


def attribute_weights(
    pos_ratio: torch.Tensor | np.ndarray | list[float],
    strategy: WeightStrategy,
    eps: float = RATIO_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-attribute ``(pos_weight, neg_weight)``, each of shape (A,), for a weighting strategy.

    With ``p`` the positive ratio of an attribute on the training split:

    - ``"none"``: ``w_pos = 1``, ``w_neg = 1`` (plain BCE).
    - ``"inverse_frequency"`` (the study's): ``w_pos = (1 - p) / p``, ``w_neg = 1``, so that the
      positives of each attribute weigh as much in total as its negatives
      (``N p w_pos = N (1 - p) w_neg``); equals ``pos_weight`` of ``nn.BCEWithLogitsLoss``.
    - ``"sqrt_inverse_frequency"``: ``w_pos = sqrt((1 - p) / p)``, ``w_neg = 1``.
    - ``"deepmar"`` (Li et al., ACPR 2015): ``w_pos = exp(1 - p)``, ``w_neg = exp(p)``.
    - ``"sqrt_deepmar"``: ``w_pos = exp((1 - p) / 2)``, ``w_neg = exp(p / 2)``.

    Clamp: ``p`` is clipped to ``[eps, 1 - eps]`` first, so an attribute absent from the
    training split (``p = 0``, e.g. ``downpurple``) or always present (``p = 1``) keeps finite
    weights; with the default ``eps = 1e-3`` the inverse-frequency positive weight is at most
    ``(1 - eps) / eps = 999``. The DeepMAR variants are bounded anyway and barely change.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown weighting strategy {strategy!r}; choose one of {STRATEGIES}")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
    p = torch.as_tensor(pos_ratio, dtype=torch.float64).clamp(eps, 1.0 - eps)
    ones = torch.ones_like(p)
    if strategy == "none":
        pos, neg = ones, ones
    elif strategy == "inverse_frequency":
        pos, neg = (1.0 - p) / p, ones
    elif strategy == "sqrt_inverse_frequency":
        pos, neg = torch.sqrt((1.0 - p) / p), ones
    elif strategy == "deepmar":
        pos, neg = torch.exp(1.0 - p), torch.exp(p)
    else:  # sqrt_deepmar
        pos, neg = torch.exp((1.0 - p) / 2.0), torch.exp(p / 2.0)
    return pos.float(), neg.float()


class WeightedBCEWithLogits(nn.Module):
    """BCE-with-logits with separate per-attribute weights for positive and negative targets.

    The weights are buffers: they follow ``.to(device)`` and are saved in checkpoints, so a
    resumed or evaluated model uses the weights of its own training split.
    """

    pos_weight: torch.Tensor
    neg_weight: torch.Tensor

    def __init__(self, pos_weight: torch.Tensor, neg_weight: torch.Tensor) -> None:
        super().__init__()
        pos_weight = torch.as_tensor(pos_weight, dtype=torch.float32)
        neg_weight = torch.as_tensor(neg_weight, dtype=torch.float32)
        if pos_weight.ndim != 1 or pos_weight.shape != neg_weight.shape:
            raise ValueError(
                "pos_weight and neg_weight must be 1-D of equal length, got "
                f"{tuple(pos_weight.shape)} and {tuple(neg_weight.shape)}"
            )
        self.register_buffer("pos_weight", pos_weight.clone())
        self.register_buffer("neg_weight", neg_weight.clone())

    @classmethod
    def from_ratio(
        cls,
        positive_ratio: torch.Tensor | np.ndarray | list[float],
        strategy: WeightStrategy,
        eps: float = RATIO_EPS,
    ) -> WeightedBCEWithLogits:
        """The criterion a loss config describes (``conf/loss``, a partial of this): weights
        from the training split's per-attribute positive ratios."""
        return cls(*attribute_weights(positive_ratio, strategy, eps))

    @classmethod
    def from_targets(
        cls, targets: torch.Tensor | np.ndarray, strategy: WeightStrategy, eps: float = RATIO_EPS
    ) -> WeightedBCEWithLogits:
        """Build the loss from training-split targets (N, A) with a weighting strategy."""
        return cls.from_ratio(positive_ratio(targets), strategy, eps)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean weighted BCE over the known cells; logits and targets (NaN: unknown) of shape
        (B, A). A batch without a known cell gives 0 (with a gradient path).

        Computed in float32 via ``logsigmoid`` (``log(1 - s(x)) = logsigmoid(-x)``), so it is
        stable for huge logits and safe under bf16/fp16 autocast.
        """
        if logits.shape != targets.shape or logits.shape[-1] != self.pos_weight.numel():
            raise ValueError(
                f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must match "
                f"and end with {self.pos_weight.numel()} attributes"
            )
        x = logits.float()
        known = ~targets.isnan()
        y = targets.float().nan_to_num(0.0)  # no NaN may reach the terms (nor their gradients)
        loss = -(
            self.pos_weight * y * F.logsigmoid(x) + self.neg_weight * (1.0 - y) * F.logsigmoid(-x)
        )
        return (loss * known).sum() / known.sum().clamp_min(1)

    def extra_repr(self) -> str:
        return f"num_attributes={self.pos_weight.numel()}"
