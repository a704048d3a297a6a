"""The scripts under experiments/ as a user runs them, each at a tiny size in its own process,
so a library change that breaks one fails here: the evaluation, re-ranking and inference
benchmarks (their JSON and printed tables), the README sample grid and the TensorBoard
screenshots (PNG files of the expected size)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO
from tests.helpers import needs


def _run(script: str, *args: str) -> str:
    """``python experiments/<script>.py <args>``; its stdout (asserting it succeeded)."""
    command = [sys.executable, str(REPO / "experiments" / f"{script}.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _colours(image: Image.Image) -> int:
    """Distinct colours in ``image``, counted up to 4096."""
    found = image.convert("RGB").getcolors(maxcolors=4096)
    return 4096 if found is None else len(found)


def test_bench_eval_times_both_rankers_on_one_matrix(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    sizes = ("--num-query", "20", "--num-gallery", "120", "--num-ids", "10")
    stdout = _run("bench_eval", *sizes, "--repeats", "2", "--out", str(out))
    report = json.loads(out.read_text())
    assert report["shape"] == [20, 120] and report["agree"] is True
    fast, loop = report["evaluate_rank_s"], report["evaluate_rank_loop_s"]
    assert len(fast["all"]) == 2 and fast["best"] == min(fast["all"])
    assert report["speedup"] == pytest.approx(loop["best"] / fast["best"])
    metrics = report["metrics"]
    assert metrics["num_valid_queries"] + metrics["num_skipped"] == 20
    assert metrics["cmc_len"] == 50 and 0 < metrics["mAP"] <= 1
    assert f"| evaluate_rank (vectorised) | 2 | {fast['best']:.3f} |" in stdout


def test_bench_rerank_reports_one_child_run_per_dimension(tmp_path: Path) -> None:
    out = tmp_path / "rerank.json"
    sizes = ("--num-query", "20", "--num-gallery", "100", "--num-ids", "10")
    stdout = _run("bench_rerank", "--dims", "8", "16", *sizes, "--out", str(out))
    runs = json.loads(out.read_text())["runs"]
    assert [r["dim"] for r in runs] == [8, 16]
    for run in runs:
        assert (run["num_query"], run["num_gallery"]) == (20, 100)
        assert run["output_gb"] == pytest.approx(20 * 100 * 4 / 1024**3)
        assert 0 < run["mAP_before"] <= 1 and 0 < run["mAP_after"] <= 1
        assert run["peak_rss_gb"] >= run["rss_before_rerank_gb"] > 0
        row = f"| {run['dim']} | 20 x 100 | {run['torch_threads']} | {run['seconds']:.1f} |"
        assert row in stdout


@needs("onnx", "onnxruntime")
def test_bench_inference_times_every_engine_on_a_random_resnet50(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    args = ("--sizes", "32x16", "--batches", "2", "--repeats", "1", "--attention")
    stdout = _run("bench_inference", *args, "--out", str(out))
    report = json.loads(out.read_text())
    assert report["model"] == "ResNet50 + CBAM, 32 attributes"
    cpu = [r for r in report["results"] if r["device"] == "cpu"]
    engines = ["pytorch eager", "pytorch trainer.predict (run_module)", "onnxruntime"]
    assert [r["engine"] for r in cpu] == engines
    for row in cpu:
        assert row["image_size"] == [32, 16] and row["batch"] == 2 and len(row["times_s"]) == 1
        assert row["latency_ms"] == pytest.approx(1000 * row["times_s"][0])
        assert row["images_per_s"] == pytest.approx(2 / row["times_s"][0])
        assert f"| cpu | 32x16 | {row['engine']} | 2 | {row['latency_ms']:.1f} |" in stdout


def test_make_sample_grid_draws_rows_of_identities(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    stdout = _run("make_sample_grid", "--rows", "2", "--columns", "3", "--out", str(out))
    assert f"wrote {out}" in stdout
    # 128x64 synthetic crops shown 2x with a 2-pixel gap, then a 150-pixel label column
    tile_width, tile_height = 2 * 64 + 2, 2 * 128 + 2
    with Image.open(out) as grid:
        assert grid.format == "PNG"
        assert grid.size == (3 * tile_width + 150, 2 * tile_height)
        for row in range(2):
            for column in range(3):
                left, top = column * tile_width, row * tile_height
                tile = grid.crop((left, top, left + tile_width - 2, top + tile_height - 2))
                assert _colours(tile) > 1  # a crop, not the blank background


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium on PATH")
def test_tensorboard_screenshots_capture_both_tabs(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path / "logs" / "run") as writer:
        for step in range(4):
            writer.add_scalar("train/lr", 0.1 / (step + 1), step)
            writer.add_scalar("val/mA", 0.5 + step / 10, step)
    shots = tmp_path / "shots"
    shots.mkdir()
    stdout = _run(
        "tensorboard_screenshots", str(tmp_path / "logs"), "--out", str(shots), "--wait", "3"
    )
    for name, size in (("time_series", (1500, 1390)), ("hparams", (2000, 300))):
        path = shots / f"tensorboard_{name}.png"
        assert f"{path}: " in stdout
        with Image.open(path) as shot:
            assert shot.format == "PNG" and shot.size == size
            assert _colours(shot) > 10  # a rendered page, not a blank one
