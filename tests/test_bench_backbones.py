"""The backbone benchmark as a user runs it, at a tiny size: a ResNet50 and a timm ViT are timed
for training and inference, a name timm does not know becomes an error row, not a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.helpers import needs


@needs("timm")
def test_bench_backbones_times_training_and_inference_per_backbone(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        str(REPO / "experiments" / "bench_backbones.py"),
        *("--backbones", "resnet50", "vit_tiny_patch16_224", "no_such_net"),
        *("--size", "64x32", "--batch", "4", "--steps", "2", "--warmup", "1", "--repeats", "1"),
        *("--train-ids", "6", "--devices", "cpu", "--out", str(out)),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    resnet, vit, unknown = report["rows"]
    for row, width in ((resnet, 2048), (vit, 192)):
        assert "error" not in row, row.get("error")
        assert row["device"] == "cpu" and row["size"] == [64, 32]
        assert row["train"]["images_per_s"] > 0 and row["train"]["batch_size"] == 4
        assert row["train"]["precision"] == "32-true"
        assert row["inference"]["images_per_s"] > 0 and row["inference"]["embedding_dim"] == width
        line = (
            f"| cpu | {row['backbone']} | {row['inference']['parameters_m']:.1f} | {width} "
            f"| 32-true | {row['train']['images_per_s']:.1f} |"
        )
        assert line in done.stdout
    message = "ValueError: model.net.name='no_such_net' is not a timm model"
    assert unknown["error"].startswith(message)
    assert f"| cpu | no_such_net | {message}" in done.stdout
