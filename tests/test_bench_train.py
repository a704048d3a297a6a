"""The training benchmark as a user runs it, at a tiny size: the plain loop (a), the PIL loop (b),
attrnet's Trainer (c) and a real 2-epoch run (d) each run in a fresh process and are reported
side by side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import REPO


def test_bench_train_times_the_limit_the_pil_loop_and_attrnet(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(REPO / "experiments" / "bench_train.py"),
        *("--presets", "default", "gpu", "--models", "resnet50", "--sizes", "32x16"),
        *("--batch-size", "4", "--train-ids", "6", "--val-ids", "2", "--images-per-id", "4"),
        *("--warmup-steps", "1", "--steps", "2", "--profile", "1", "--pil-workers", "0"),
        *("--real-epochs", "2", "--skip-data-path", "--out", str(out)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    default, gpu = report["runs"]
    for kind in ("plain", "pil", "attrnet"):
        run = default[kind]
        assert "error" not in run, run.get("error")
        assert run["images_per_s"] > 0 and run["batch_size"] == 4
    assert default["attrnet"]["timed_steps"] == 2
    assert default["attrnet"]["profile"]["steps"] == 1
    assert default["plain"]["profile"]["wall_ms_per_step"] > 0
    if torch.cuda.is_available():
        assert gpu["attrnet"]["precision"] == "bf16-mixed" and gpu["attrnet"]["images_per_s"] > 0
    else:
        assert gpu["attrnet"]["skipped"] == "skipped: the preset needs CUDA"
    ratio = default["attrnet"]["images_per_s"] / default["plain"]["images_per_s"]
    assert f"| {ratio:.2f} |" in done.stdout  # the printed table gives attrnet / plain
    # (d): every epoch of the real run timed end to end; the last against steady state x steps
    real = default["real"]
    assert "error" not in real, real.get("error")
    assert [epoch["steps"] for epoch in real["epochs"]] == [4, 4]  # 16 train images / batch 4
    last = real["last_epoch"]
    assert last["seconds"] == real["epochs"][-1]["seconds"] > last["validation_s"] > 0
    assert last["expected_s"] == 4 * 4 / default["attrnet"]["images_per_s"]
    assert last["ratio"] == last["seconds"] / last["expected_s"]
    row = f"| 2 | {last['seconds']:.2f} | {last['validation_s']:.2f} | {last['expected_s']:.2f} |"
    assert row in done.stdout
