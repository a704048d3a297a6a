"""Test-mode result lists: threshold choice, cutting, reid_test.txt round trip, rank pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attrnet.retrieval import (
    best_first,
    choose_threshold,
    cut_ranked_lists,
    draw_ranked_list,
    read_reid_results,
    save_ranked_lists,
    write_reid_results,
)
from attrnet.retrieval.visualize import MATCH_COLOUR, MISS_COLOUR


def returned(row, threshold, low, cap):
    """Plain rule: stable ascending order, items <= threshold, at least low, at most cap."""
    order = sorted(range(len(row)), key=lambda j: row[j])
    n = sum(1 for j in order if row[j] <= threshold)
    return order[: min(max(n, low), cap)]


def mean_f1(dist, q_pids, g_pids, threshold, low, cap):
    scores = []
    for i, row in enumerate(dist.tolist()):
        relevant = sum(1 for p in g_pids if p == q_pids[i])
        if relevant:
            got = returned(row, threshold, low, cap)
            hits = sum(1 for j in got if g_pids[j] == q_pids[i])
            scores.append(2 * hits / (len(got) + relevant))
    return sum(scores) / len(scores)


def validation_case(seed: int):
    rng = np.random.default_rng(seed)
    g_pids = rng.integers(0, 8, 60)
    q_pids = rng.integers(0, 9, 15)  # identity 8 has no gallery image: left out of the mean
    same = q_pids[:, None] == g_pids[None, :]
    dist = rng.integers(0, 20, (15, 60)) / 10 + np.where(same, 0.0, 0.8)  # ties, overlap
    return dist.astype(np.float32), q_pids, g_pids


@pytest.mark.parametrize(("seed", "low", "cap"), [(0, 1, None), (1, 1, 10), (2, 3, 25)])
def test_threshold_is_optimal_against_brute_force(seed: int, low: int, cap: int | None) -> None:
    dist, q_pids, g_pids = validation_case(seed)
    choice = choose_threshold(dist, q_pids, g_pids, max_results=cap, min_results=low)
    cap_n = 60 if cap is None else cap
    values = np.unique(dist)
    candidates = np.concatenate([values, (values[1:] + values[:-1]) / 2, [values[0] - 1]])
    best = max(mean_f1(dist, q_pids, g_pids, t, low, cap_n) for t in candidates)
    assert choice.mean_f1 == pytest.approx(best, abs=1e-9)
    assert mean_f1(dist, q_pids, g_pids, choice.threshold, low, cap_n) == pytest.approx(best)
    assert choice.num_queries == int(np.isin(q_pids, g_pids).sum())


def test_threshold_on_separable_data_splits_the_gap() -> None:
    q_pids, g_pids = np.array([1, 2]), np.array([1, 1, 2, 2, 3])
    dist = np.array([[0.1, 0.2, 0.9, 1.0, 0.8], [0.9, 1.0, 0.3, 0.2, 0.7]], dtype=np.float32)
    choice = choose_threshold(dist, q_pids, g_pids)
    assert choice.mean_f1 == pytest.approx(1.0)
    assert choice.threshold == pytest.approx(0.5)  # midway between 0.3 and 0.7
    assert [x.tolist() for x in cut_ranked_lists(dist, choice.threshold, None)] == [[0, 1], [3, 2]]


def test_cut_ranked_lists_rule() -> None:
    dist, _, _ = validation_case(3)
    for threshold, low, cap in [(0.5, 1, 5), (1.0, 2, 40), (-1.0, 3, 10), (9.0, 1, None)]:
        lists = cut_ranked_lists(dist, threshold, cap, min_results=low, chunk_size=4)
        for row, got in zip(dist, lists, strict=True):
            assert got.tolist() == returned(row.tolist(), threshold, low, cap or 60)


def test_best_first_is_a_stable_sort_prefix() -> None:
    d = torch.tensor([[0.5, 0.1, 0.5, 0.5, 0.2, 0.5], [3.0, 2.0, 1.0, 0.0, 1.0, 2.0]])
    vals, idx = best_first(d, 3)
    assert idx.tolist() == [[1, 4, 0], [3, 2, 4]]  # ties across the cut keep gallery order
    torch.testing.assert_close(vals, d.gather(1, idx))


def test_bad_limits() -> None:
    dist, q_pids, g_pids = validation_case(0)
    with pytest.raises(ValueError, match="min_results"):
        cut_ranked_lists(dist, 0.5, max_results=2, min_results=3)
    with pytest.raises(ValueError, match="relevant"):
        choose_threshold(dist, np.full(15, 99), g_pids)


def test_reid_results_round_trip(tmp_path) -> None:
    path = tmp_path / "out" / "reid_test.txt"
    queries = ["001261.jpg", "000002.jpg", "000003.jpg"]
    ranked = [["016903.jpg", "005883.jpg"], ["000007.jpg"], []]
    write_reid_results(path, queries, ranked)
    assert path.read_text(encoding="utf-8") == (
        "001261.jpg: 016903.jpg, 005883.jpg\n000002.jpg: 000007.jpg\n000003.jpg:\n"
    )
    assert read_reid_results(path) == dict(zip(queries, ranked, strict=True))
    assert [p.name for p in path.parent.iterdir()] == ["reid_test.txt"]  # no temp file left


def test_reid_write_failure_keeps_previous_file(tmp_path) -> None:
    path = tmp_path / "reid_test.txt"
    write_reid_results(path, ["a.jpg"], [["b.jpg"]])
    with pytest.raises(ValueError, match="contains"):
        write_reid_results(path, ["a.jpg", "c.jpg"], [["b.jpg"], ["bad,name.jpg"]])
    assert read_reid_results(path) == {"a.jpg": ["b.jpg"]}
    with pytest.raises(ValueError, match="ranked lists"):
        write_reid_results(path, ["a.jpg"], [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.jpg: b.jpg\nno colon here\n", "line 2"),
        ("a.jpg: b.jpg, , c.jpg\n", "line 1: malformed gallery name"),
        ("a.jpg:b.jpg\n", "line 1: expected ': '"),
        ("a.jpg: b.jpg\na.jpg: c.jpg\n", "line 2: query 'a.jpg' appears twice"),
        ("a.jpg: b.jpg\n\n", "line 2"),
    ],
)
def test_read_reid_results_names_the_bad_line(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "reid_test.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_reid_results(path)


def test_draw_ranked_list_frames_matches(tmp_path) -> None:
    query = tmp_path / "q.png"
    Image.new("RGB", (20, 40), (0, 0, 255)).save(query)
    gallery = [Image.new("RGB", (30, 60), (200, 200, 0)) for _ in range(4)]
    picture = draw_ranked_list(
        query, gallery, [True, False, True, False], k=3, tile_size=(32, 64), border=2, gap=4
    )
    assert picture.size == (32 * 4 + 4 * 5, 64)
    first = 32 + 3 * 4  # the query, then a triple gap
    assert picture.getpixel((first, 30)) == MATCH_COLOUR
    assert picture.getpixel((first + 36, 30)) == MISS_COLOUR
    assert picture.getpixel((first + 72 + 16, 32)) == (200, 200, 0)
    assert picture.getpixel((16, 32)) == (0, 0, 255)
    paths = save_ranked_lists([picture, picture], tmp_path / "ranks")
    assert [p.name for p in paths] == ["ranked_000.png", "ranked_001.png"]
    with Image.open(paths[1]) as saved:
        assert saved.size == picture.size
    with pytest.raises(ValueError, match="match flag"):
        draw_ranked_list(query, gallery, [True], k=3)
