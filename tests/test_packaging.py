"""Packaging: a wheel built from the repo, installed in a fresh venv, composes the configs."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.conftest import REPO

COMPOSE = """
import attrnet, sys
from hydra import compose, initialize_config_module
with initialize_config_module("attrnet.conf", version_base="1.3"):
    cfg = compose("train", overrides=["model=resnet50_attention", "trainer=gpu_4gb"])
assert "site-packages" in attrnet.__file__, attrnet.__file__
print(cfg.model.attention, cfg.trainer.precision, cfg.data.source._target_)
"""


def test_wheel_in_fresh_venv_composes_configs(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("attrnet-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True
    )
    # dependencies come from this interpreter's site-packages (no network); attrnet from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run(
        [python, "-c", COMPOSE], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["True", "16-mixed", "attrnet.data.sources.SyntheticSource"]
    script = subprocess.run(
        [env_dir / "bin" / "attrnet-train", "--cfg", "job", "model=resnet50_attention"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "attention: true" in script.stdout
