"""Weighted BCE: weighting strategies, hand-computed loss values, stability, clamping."""

import math

import numpy as np
import pytest
import torch

from attrnet.models.losses import (
    RATIO_EPS,
    STRATEGIES,
    WeightedBCEWithLogits,
    attribute_weights,
    positive_ratio,
)

# 4 samples x 4 attributes: positive ratios 0.25, 0.5, 0.75 and 0 (absent, like downpurple).
TARGETS = np.array(
    [
        [1, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 0],
    ],
    dtype=np.float32,
)
P = [0.25, 0.5, 0.75, RATIO_EPS]  # the last one after the clamp

# Hand-written (pos_weight, neg_weight) per strategy for the ratios in P.
EXPECTED = {
    "none": ([1, 1, 1, 1], [1, 1, 1, 1]),
    "inverse_frequency": ([3.0, 1.0, 1 / 3, 999.0], [1, 1, 1, 1]),
    "sqrt_inverse_frequency": ([math.sqrt(3), 1.0, math.sqrt(1 / 3), math.sqrt(999)], [1, 1, 1, 1]),
    "deepmar": (
        [math.exp(0.75), math.exp(0.5), math.exp(0.25), math.exp(1 - RATIO_EPS)],
        [math.exp(0.25), math.exp(0.5), math.exp(0.75), math.exp(RATIO_EPS)],
    ),
    "sqrt_deepmar": (
        [math.exp(0.375), math.exp(0.25), math.exp(0.125), math.exp((1 - RATIO_EPS) / 2)],
        [math.exp(0.125), math.exp(0.25), math.exp(0.375), math.exp(RATIO_EPS / 2)],
    ),
}


def reference_loss(logits: np.ndarray, targets: np.ndarray, wp, wn) -> float:
    """Naive float64 formula, for moderate logits only."""
    x = logits.astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-x))
    wp, wn = np.asarray(wp, dtype=np.float64), np.asarray(wn, dtype=np.float64)
    return float(np.mean(-(wp * targets * np.log(s) + wn * (1 - targets) * np.log(1 - s))))


def test_positive_ratio_numpy_and_tensor():
    expected = torch.tensor([0.25, 0.5, 0.75, 0.0])
    assert torch.allclose(positive_ratio(TARGETS), expected)
    assert torch.allclose(positive_ratio(torch.from_numpy(TARGETS)), expected)


def test_positive_ratio_rejects_non_binary():
    with pytest.raises(ValueError, match="only 0, 1 and NaN"):
        positive_ratio(np.array([[0.0, 2.0]]))
    with pytest.raises(ValueError, match=r"\(N, A\)"):
        positive_ratio(np.zeros(3))


def test_strategies_cover_expected():
    assert set(STRATEGIES) == set(EXPECTED)


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_attribute_weights_by_hand(strategy):
    pos, neg = attribute_weights(positive_ratio(TARGETS), strategy)
    exp_pos, exp_neg = EXPECTED[strategy]
    assert pos.shape == neg.shape == (4,)
    np.testing.assert_allclose(pos.numpy(), exp_pos, rtol=1e-6)
    np.testing.assert_allclose(neg.numpy(), exp_neg, rtol=1e-6)


def test_clamp_keeps_weights_finite_for_p_0_and_1():
    for strategy in STRATEGIES:
        pos, neg = attribute_weights(torch.tensor([0.0, 1.0]), strategy)
        assert torch.isfinite(pos).all() and torch.isfinite(neg).all()
        assert (pos > 0).all() and (neg > 0).all()
    pos, _ = attribute_weights(torch.tensor([0.0, 1.0]), "inverse_frequency", eps=0.01)
    np.testing.assert_allclose(pos.numpy(), [99.0, 0.01 / 0.99], rtol=1e-6)


def test_unknown_strategy():
    with pytest.raises(ValueError, match="deepmar"):
        attribute_weights(torch.tensor([0.5]), "focal")


@pytest.mark.parametrize("strategy", sorted(EXPECTED))
def test_loss_matches_hand_computation(strategy):
    logits = np.array(
        [
            [2.0, -1.0, 0.5, -3.0],
            [-0.5, 1.5, 0.0, 0.25],
            [1.0, -2.0, 3.0, -1.0],
            [0.1, 0.2, -0.3, 4.0],
        ],
        dtype=np.float32,
    )
    loss_fn = WeightedBCEWithLogits.from_targets(TARGETS, strategy)
    got = loss_fn(torch.from_numpy(logits), torch.from_numpy(TARGETS)).item()
    assert got == pytest.approx(reference_loss(logits, TARGETS, *EXPECTED[strategy]), rel=1e-6)


def test_explicit_two_number_example():
    # p: w_pos = 3, y = 1, x = 0 -> 3 * log 2; n: w_neg = 1, y = 0, x = 0 -> log 2; mean = 2 log 2
    loss_fn = WeightedBCEWithLogits(torch.tensor([3.0, 3.0]), torch.tensor([1.0, 1.0]))
    got = loss_fn(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    assert got.item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_none_equals_torch_bce():
    logits, targets = torch.randn(8, 5), torch.randint(0, 2, (8, 5)).float()
    loss_fn = WeightedBCEWithLogits(torch.ones(5), torch.ones(5))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(loss_fn(logits, targets), expected, atol=1e-6)


def test_stable_for_huge_logits():
    loss_fn = WeightedBCEWithLogits(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0]))
    logits = torch.tensor([[1e4, -1e4], [-1e4, 1e4]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss = loss_fn(logits, targets)
    # correct and confident: 0; wrong by 1e4: w * 1e4. Mean of (0, 0, 2e4, 1e4) = 7500.
    assert loss.item() == pytest.approx(7500.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_weights_are_buffers_in_state_dict():
    loss_fn = WeightedBCEWithLogits.from_targets(TARGETS, "deepmar")
    state = loss_fn.state_dict()
    assert set(state) == {"pos_weight", "neg_weight"}
    fresh = WeightedBCEWithLogits(torch.ones(4), torch.ones(4))
    fresh.load_state_dict(state)
    assert torch.equal(fresh.pos_weight, loss_fn.pos_weight)
    assert loss_fn.to(torch.float64).pos_weight.dtype == torch.float64  # moves with the module


def test_bf16_autocast_computes_in_float32():
    loss_fn = WeightedBCEWithLogits.from_targets(TARGETS, "inverse_frequency")
    logits = torch.randn(4, 4)
    targets = torch.from_numpy(TARGETS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(logits.bfloat16(), targets)
    assert loss.dtype == torch.float32
    expected = loss_fn(logits.bfloat16().float(), targets)
    assert torch.allclose(loss, expected)


def test_shape_mismatch():
    loss_fn = WeightedBCEWithLogits(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="3 attributes"):
        loss_fn(torch.zeros(2, 4), torch.zeros(2, 4))
