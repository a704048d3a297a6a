"""Distance matrices: definitions against float64 formulas, chunking, inputs and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.retrieval import (
    compute_distance,
    iter_distance_chunks,
    paired_distance,
    weights_from_scores,
)


@pytest.fixture
def feats() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    query = rng.normal(3.0, 2.0, (23, 32)).astype(np.float32)  # off-centre, like logits
    gallery = rng.normal(3.0, 2.0, (57, 32)).astype(np.float32)
    gallery[5] = query[0]  # an exact duplicate: distance 0, never NaN
    return query, gallery


def expected(query, gallery, metric, weights=None):
    q, g = query.astype(np.float64), gallery.astype(np.float64)
    if metric == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        gn = g / np.linalg.norm(g, axis=1, keepdims=True)
        return 1.0 - qn @ gn.T
    w = np.ones(q.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.sqrt((w * (q[:, None, :] - g[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("metric", ["euclidean", "weighted", "cosine"])
def test_matches_float64_definition(feats, metric: str) -> None:
    query, gallery = feats
    weights = np.linspace(0.2, 2.0, 32) if metric == "weighted" else None
    out = compute_distance(query, gallery, metric=metric, weights=weights)
    assert out.dtype == np.float32 and out.shape == (23, 57)
    want = expected(query, gallery, metric, weights)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    assert np.isfinite(out).all() and (out >= 0).all()
    assert out[0, 5] == pytest.approx(0.0, abs=1e-6)  # no sqrt(rounding error) at a duplicate


@pytest.mark.parametrize("metric", ["euclidean", "weighted", "cosine"])
def test_chunked_equals_unchunked(feats, metric: str) -> None:
    query, gallery = feats
    weights = np.linspace(0.2, 2.0, 32)
    whole = compute_distance(query, gallery, metric, weights, chunk_size=1000)
    for chunk in (1, 5):
        parts = compute_distance(query, gallery, metric, weights, chunk_size=chunk)
        np.testing.assert_allclose(parts, whole, atol=1e-5, rtol=1e-5)


def test_squared_and_torch_input(feats) -> None:
    """Tensors (also bfloat16 ones, which have no numpy view) give the arrays' distances."""
    query, gallery = (torch.from_numpy(x) for x in feats)
    plain = compute_distance(query, gallery)
    np.testing.assert_array_equal(plain, compute_distance(*feats))
    squared = compute_distance(query, gallery, squared=True)
    np.testing.assert_allclose(squared, plain**2, atol=1e-5, rtol=1e-5)
    cos = compute_distance(query, gallery, "cosine")
    np.testing.assert_allclose(compute_distance(query, gallery, "cosine", squared=True), cos**2)
    half = compute_distance(query.bfloat16(), gallery.bfloat16())
    np.testing.assert_allclose(half, plain, rtol=0.05, atol=0.1)


def test_chunks_cover_all_rows(feats) -> None:
    query, gallery = feats
    starts = [(s, b.shape) for s, b in iter_distance_chunks(query, gallery, chunk_size=10)]
    assert starts == [(0, (10, 57)), (10, (10, 57)), (20, (3, 57))]


def test_unit_weights_equal_euclidean_and_weights_matter(feats) -> None:
    query, gallery = feats
    plain = compute_distance(query, gallery)
    ones = compute_distance(query, gallery, "weighted", weights=np.ones(32))
    np.testing.assert_allclose(ones, plain, rtol=1e-6, atol=1e-6)
    skewed = np.r_[np.full(16, 1.9), np.full(16, 0.1)]
    assert not np.allclose(compute_distance(query, gallery, "weighted", skewed), plain)


@pytest.mark.parametrize("metric", ["euclidean", "weighted", "cosine"])
def test_paired_distance_agrees_with_matrix(feats, metric: str) -> None:
    query, gallery = (torch.from_numpy(x) for x in feats)
    weights = torch.linspace(0.2, 2.0, 32)
    matrix = compute_distance(query, gallery, metric, weights)
    rows, cols = torch.tensor([0, 3, 22]), torch.tensor([5, 40, 1])
    pairs = paired_distance(query[rows], gallery[cols], metric, weights)
    np.testing.assert_allclose(pairs, matrix[rows, cols], atol=1e-5, rtol=1e-5)


def test_weights_from_scores() -> None:
    w = weights_from_scores([0.9, 0.6, 0.3])
    np.testing.assert_allclose(w, [1.5, 1.0, 0.5], rtol=1e-6)
    assert w.dtype == np.float32 and w.mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(weights_from_scores(torch.zeros(4)), np.ones(4))
    with pytest.raises(ValueError):
        weights_from_scores([0.5, -0.1])


def test_rejects_bad_input(feats) -> None:
    query, gallery = feats
    with pytest.raises(ValueError, match="dims"):
        compute_distance(query, gallery[:, :10])
    with pytest.raises(ValueError, match="weights"):
        compute_distance(query, gallery, "weighted")
    with pytest.raises(ValueError, match="32 dimensions"):
        compute_distance(query, gallery, "weighted", weights=np.ones(3))
    with pytest.raises(ValueError, match="metric"):
        compute_distance(query, gallery, "manhattan")
    with pytest.raises(ValueError, match="2-D"):
        compute_distance(query[0], gallery)
    bad = query.copy()
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        compute_distance(bad, gallery)
