"""The console scripts as a user runs them: a Hydra multirun of attrnet-train, then predict;
each job's run folder keeps its log (``train.log``, ``predict.log``) with what it printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import TINY_OVERRIDES


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_multirun_sweep_writes_one_run_folder_per_job(tmp_path: Path) -> None:
    env = {**os.environ, "ATTRNET_CACHE": str(tmp_path / "cache")}
    command = [
        _script("attrnet-train"),
        "-m",
        "model=resnet50,resnet50_attention",
        *TINY_OVERRIDES,
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=true",  # no terminal here: progress lines instead of the bar
        "callbacks.progress.interval_s=0",
    ]  # no path overrides: logs/ under the launch directory, as a user gets it
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, attention in zip(jobs, ("attention: false", "attention: true"), strict=True):
        assert attention in (job / ".hydra" / "config.yaml").read_text()
        assert json.loads((job / "metrics.json").read_text())["summary"]["mA"] > 0
        assert (job / "checkpoints" / "last.ckpt").exists() and (job / "split.json").is_file()
        _check_train_log(job, jobs, done.stdout)
    assert "━" not in done.stdout + done.stderr  # no progress bar drawn into a pipe

    query = next((tmp_path / "cache").glob("market_synthetic-*")) / "query"
    out = tmp_path / "classification_test.csv"
    subprocess.run(
        [
            _script("attrnet-predict"),
            f"ckpt_path={jobs[1] / 'checkpoints' / 'last.ckpt'}",
            f"images_dir={query}",
            f"output={out}",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert len(out.read_text().splitlines()) == 1 + len(list(query.iterdir()))
    (predict_log,) = (tmp_path / "logs" / "predict" / "runs").glob("*/predict.log")
    assert f"Wrote {len(list(query.iterdir()))} predictions to {out}" in predict_log.read_text()


def _check_train_log(job: Path, jobs: list[Path], printed: str) -> None:
    """``train.log`` of one multirun job: what the run printed (Lightning's messages, the
    model summary, progress lines, the final tables, the run folder), nothing of the other job,
    no third-party tips or deprecation notices, no warning but the tiny data's own (attributes
    without a positive in a split)."""
    text = (job / "train.log").read_text()
    for line in (
        "GPU available: False, used: False",
        "Trainable params",
        "epoch 1/2  batch 1/",
        "epoch 2/2 validation done  val/mA ",
        "OptimizerSwap: epoch 1, step ",
        "Final metrics (epoch",
        "Per attribute (val):",
        f"Run folder: {job}",
    ):
        assert line in text and line in printed
    progress = r"batch \d+/\d+  step \d+  loss \d\.\d{4}  \d+ img/s  \d+:\d\d:\d\d left"
    assert re.search(progress, text)
    assert all(f"Run folder: {other}\n" not in text for other in jobs if other != job)
    for chatter in ("Tip:", "LeafSpec", "litlogger", "persistent_workers"):
        assert chatter not in text and chatter not in printed
    warnings = [line for line in text.splitlines() if "[WARNING]" in line]
    assert all("attributes without a positive or a negative" in w for w in warnings), warnings
    assert "[ERROR]" not in text


def test_a_refused_run_keeps_its_error_in_its_log(tmp_path: Path) -> None:
    """A run refused for a user's mistake (here: a checkpoint to resume that is not there)
    prints one line on stderr, exits with status 2, and the line is in train.log too."""
    run = tmp_path / "run"
    missing = tmp_path / "missing.ckpt"
    command = [_script("attrnet-train"), f"ckpt_path={missing}", f"hydra.run.dir={run}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2
    line = f"error: {missing}: checkpoint file does not exist"
    assert done.stderr.strip() == line and "Traceback" not in done.stdout
    assert line in (run / "train.log").read_text().splitlines()[-1]
