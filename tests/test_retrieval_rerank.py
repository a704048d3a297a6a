"""Memory-bounded k-reciprocal re-ranking against a plain dense port of the published method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.retrieval import re_ranking


def dense_re_ranking(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """Zhong et al. (CVPR 2017), step by step on dense N x N arrays, one item at a time."""
    num_q = q_g.shape[0]
    dist = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n = dist.shape[0]
    original = (dist**2).astype(np.float32)
    original = original / original.max(axis=1, keepdims=True)  # symmetric input: row = column
    ranking = np.argsort(original, axis=1, kind="stable")

    def reciprocal(i, k):
        return [j for j in ranking[i, : k + 1] if i in ranking[j, : k + 1]]

    half = int(np.around(k1 / 2.0))
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        base = reciprocal(i, k1)
        grown = list(base)
        for c in base:
            c_set = reciprocal(c, half)
            if len(set(c_set) & set(base)) > 2.0 / 3.0 * len(c_set):
                grown += c_set
        grown = np.unique(grown)
        weight = np.exp(-original[i, grown])
        v[i, grown] = weight / weight.sum()
    if k2 != 1:
        v = np.stack([v[ranking[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.empty((num_q, n), dtype=np.float32)
    for i in range(num_q):
        shared = np.minimum(v[i][None, :], v).sum(axis=1)
        jaccard[i] = 1.0 - shared / (2.0 - shared)
    final = jaccard * (1 - lambda_value) + original[:num_q] * lambda_value
    return final[:, num_q:]


def dense_distances(feats: np.ndarray, metric: str, weights: np.ndarray) -> np.ndarray:
    x = feats.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1.0 - x @ x.T
    w = weights if metric == "weighted" else np.ones(x.shape[1])
    return np.sqrt((w * (x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def case(seed: int, num_q: int = 30, num_g: int = 80, dims: int = 8):
    """Clustered features (identities), so that reciprocal sets and expansions are non-trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dims))
    labels = rng.integers(0, 12, num_q + num_g)
    feats = (centres[labels] + 0.6 * rng.normal(size=(num_q + num_g, dims))).astype(np.float32)
    return feats[:num_q], feats[num_q:]


def reference(query, gallery, metric="euclidean", weights=None, **params):
    num_q = len(query)
    d = dense_distances(np.concatenate([query, gallery]), metric, weights)
    return dense_re_ranking(d[:num_q, num_q:], d[:num_q, :num_q], d[num_q:, num_q:], **params)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"k1": 7, "k2": 3, "lambda_value": 0.0},
        {"k1": 5, "k2": 1, "lambda_value": 0.5},
        {"k1": 15, "k2": 6, "lambda_value": 0.3},  # odd k1: half-size sets use round(7.5) = 8
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_dense_reference(seed: int, params: dict) -> None:
    query, gallery = case(seed)
    got = re_ranking(query, gallery, chunk_size=17, **params)
    assert got.dtype == torch.float32 and got.shape == (30, 80)
    np.testing.assert_allclose(got.numpy(), reference(query, gallery, **params), atol=1e-5)


@pytest.mark.parametrize("metric", ["weighted", "cosine"])
def test_other_metrics_match_reference(metric: str) -> None:
    query, gallery = case(2)
    weights = np.linspace(0.3, 1.7, 8)
    got = re_ranking(query, gallery, metric=metric, weights=weights)
    want = reference(query, gallery, metric=metric, weights=weights)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_chunk_size_does_not_change_the_result() -> None:
    query, gallery = case(3)
    whole = re_ranking(query, gallery, chunk_size=4096)
    torch.testing.assert_close(re_ranking(query, gallery, chunk_size=1), whole)


def test_lambda_one_is_the_normalised_original_distance() -> None:
    query, gallery = case(4)
    feats = np.concatenate([query, gallery]).astype(np.float64)
    sq = ((feats[:, None] - feats[None]) ** 2).sum(-1)
    want = (sq / sq.max(axis=1, keepdims=True))[:30, 30:]
    got = re_ranking(query, gallery, lambda_value=1.0)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_small_sets_and_bad_parameters() -> None:
    query, gallery = case(5, num_q=3, num_g=4)
    got = re_ranking(query, gallery)  # k1 larger than the whole set
    np.testing.assert_allclose(got.numpy(), reference(query, gallery), atol=1e-5)
    with pytest.raises(ValueError, match="k1"):
        re_ranking(query, gallery, k1=0)
    with pytest.raises(ValueError, match="lambda"):
        re_ranking(query, gallery, lambda_value=1.5)
