"""The console scripts as a user runs them: a Hydra multirun of attrnet-train, then predict."""

from __future__ import annotations

import json
import os
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
    ]  # no path overrides: logs/ under the launch directory, as a user gets it
    subprocess.run(command, cwd=tmp_path, env=env, check=True, capture_output=True, text=True)
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, attention in zip(jobs, ("attention: false", "attention: true"), strict=True):
        assert attention in (job / ".hydra" / "config.yaml").read_text()
        assert json.loads((job / "metrics.json").read_text())["summary"]["mA"] > 0
        assert (job / "checkpoints" / "last.ckpt").exists() and (job / "split.json").is_file()

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
