"""evaluate_rank against an independent per-query reference and a hand-worked example."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.retrieval import evaluate_rank, evaluate_rank_loop


def reference_scores(dist, q_pids, g_pids, q_cams, g_cams, max_rank, protocol):
    """Plain per-query scoring: Python's stable sort, explicit filtering, running counts."""
    max_rank = min(max_rank, len(g_pids))
    cmc_total, aps, inps, skipped = [0.0] * max_rank, [], [], 0
    for i, row in enumerate(dist.tolist()):
        ranking = sorted(range(len(row)), key=lambda j: row[j])
        if protocol == "market1501":
            ranking = [
                j
                for j in ranking
                if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])
            ]
        found, precisions, first, last = 0, [], None, None
        for pos, j in enumerate(ranking):
            if g_pids[j] == q_pids[i]:
                found += 1
                precisions.append(found / (pos + 1))
                first = pos if first is None else first
                last = pos
        if not found:
            skipped += 1
            continue
        for k in range(max_rank):
            cmc_total[k] += 1.0 if first <= k else 0.0
        aps.append(sum(precisions) / found)
        inps.append(found / (last + 1))
    valid = len(aps)
    return np.array(cmc_total) / valid, sum(aps) / valid, sum(inps) / valid, valid, skipped


def random_case(seed: int, num_q: int = 40, num_g: int = 300, levels: int = 12):
    """Quantised distances (many ties), junk, distractors, same-camera and absent identities."""
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(-1, 10, num_g)  # -1 junk, 0 distractor, 1..9 identities
    q_pids = rng.integers(1, 12, num_q)  # 10, 11 never in the gallery
    q_cams, g_cams = rng.integers(1, 4, num_q), rng.integers(1, 4, num_g)
    dist = (rng.integers(0, levels, (num_q, num_g)) / 4.0).astype(np.float32)
    dist[0] = 1.5  # a row of equal distances: order is pure gallery order
    dist[1] += 1000.0  # a large offset with a small spread
    return dist, q_pids, g_pids, q_cams, g_cams


def assert_same(result, expected):
    cmc, m_ap, m_inp, valid, skipped = expected
    np.testing.assert_allclose(result.cmc, cmc, atol=1e-6)
    assert result.mAP == pytest.approx(m_ap, abs=1e-6)
    assert result.mINP == pytest.approx(m_inp, abs=1e-6)
    assert (result.num_valid_queries, result.num_skipped) == (valid, skipped)


@pytest.mark.parametrize("protocol", ["market1501", "study"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_data(seed: int, protocol: str) -> None:
    case = random_case(seed)
    expected = reference_scores(*case, max_rank=20, protocol=protocol)
    assert expected[4] > 0  # the case does exercise skipped queries
    for chunk in (1, 7, 64):
        result = evaluate_rank(*case, max_rank=20, protocol=protocol, chunk_size=chunk)
        assert_same(result, expected)
    assert_same(evaluate_rank_loop(*case, max_rank=20, protocol=protocol), expected)


def test_wide_gallery_with_continuous_distances() -> None:
    rng = np.random.default_rng(5)
    dist, q_pids, g_pids, q_cams, g_cams = random_case(5, num_q=20, num_g=3000)
    dist = rng.random(dist.shape)  # float64, no ties: exercises many bins per row
    expected = reference_scores(dist, q_pids, g_pids, q_cams, g_cams, 50, "market1501")
    assert_same(evaluate_rank(torch.from_numpy(dist), q_pids, g_pids, q_cams, g_cams), expected)


def hand_case():
    g_pids = np.array([1, 2, 1, -1, 0, 1])
    g_cams = np.array([1, 2, 2, 3, 4, 3])
    q_pids, q_cams = np.array([1, 2, 7]), np.array([1, 1, 1])
    dist = np.array(
        [
            [0.10, 0.20, 0.30, 0.05, 0.40, 0.35],
            [0.50, 0.50, 0.90, 0.90, 0.10, 0.90],  # g0 and g1 tie: g0 (a miss) ranks first
            [0.10, 0.20, 0.30, 0.40, 0.50, 0.60],  # identity 7 is not in the gallery
        ],
        dtype=np.float32,
    )
    return dist, q_pids, g_pids, q_cams, g_cams


def test_hand_worked_market_protocol() -> None:
    # Query 1 keeps g1 (miss), g2 (hit), g5 (hit), g4 (distractor): hits at ranks 2 and 3.
    # Query 2 keeps g4, g0, g1 (hit, after its tie g0), g2, g5: one hit at rank 3.
    result = evaluate_rank(*hand_case(), max_rank=4)
    np.testing.assert_allclose(result.cmc, [0.0, 0.5, 1.0, 1.0])
    assert result.mAP == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 3) / 2)
    assert result.mINP == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert (result.num_valid_queries, result.num_skipped) == (2, 1)
    assert result.rank(2) == 0.5
    assert result.as_dict(ranks=(1, 5))["rank1"] == 0.0


def test_hand_worked_study_protocol_filters_nothing() -> None:
    # Query 1: g3 (junk, kept), g0 (same camera, kept: hit), g1, g2 (hit), g5 (hit), g4.
    result = evaluate_rank(*hand_case(), max_rank=6, protocol="study")
    ap_1 = (1 / 2 + 2 / 4 + 3 / 5) / 3
    assert result.mAP == pytest.approx((ap_1 + 1 / 3) / 2)
    assert result.mINP == pytest.approx((3 / 5 + 1 / 3) / 2)
    np.testing.assert_allclose(result.cmc, [0.0, 0.5, 1.0, 1.0, 1.0, 1.0])


def test_cmc_length_is_capped_by_gallery_size() -> None:
    assert len(evaluate_rank(*hand_case(), max_rank=50).cmc) == 6


def test_rejects_bad_input() -> None:
    dist, q_pids, g_pids, q_cams, g_cams = hand_case()
    with pytest.raises(ValueError, match="q_pids"):
        evaluate_rank(dist, q_pids[:2], g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="protocol"):
        evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol="duke")
    nan = dist.copy()
    nan[0, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_rank(nan, q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="no query"):
        evaluate_rank(dist, np.array([7, 8, 9]), g_pids, q_cams, g_cams)


def test_unknown_cameras_remove_only_junk_in_both_implementations() -> None:
    """Camera -1 (no camera_id) is never "the same camera": only junk leaves the ranking."""
    dist, q_pids, g_pids, _, _ = random_case(5)
    unknown_q, unknown_g = np.full(len(q_pids), -1), np.full(len(g_pids), -1)
    # the reference with cameras that never coincide removes exactly the junk
    expected = reference_scores(
        dist, q_pids, g_pids, np.zeros(len(q_pids)), np.ones(len(g_pids)), 20, "market1501"
    )
    for implementation in (evaluate_rank, evaluate_rank_loop):
        result = implementation(
            dist, q_pids, g_pids, unknown_q, unknown_g, max_rank=20, protocol="market1501"
        )
        assert_same(result, expected)
