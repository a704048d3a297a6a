"""The training benchmark as a user runs it, at a tiny size: the plain loop (a), the PIL loop (b)
and attrnet's Trainer (c) each run in a fresh process and are reported side by side."""

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
        *("--skip-data-path", "--out", str(out)),
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
