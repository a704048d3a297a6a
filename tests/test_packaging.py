"""Packaging: the configs compose from a plain (not editable) install and from the checkout.

``attrnet/conf`` is a link to the repo's ``conf/``: a wheel holds a copy, and the source folder
finds it too, so a run from the checkout root, which imports ``attrnet`` from the source folder
(``python -m``, tests, experiments), composes as well as one from elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.conftest import REPO

NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "logs", "outputs")
COMPOSE = """
import attrnet, sys
from hydra import compose, initialize_config_module
with initialize_config_module("attrnet.conf", version_base="1.3"):
    cfg = compose("train", overrides=["model=resnet50_attention", "trainer=gpu_4gb"])
print(attrnet.__file__, cfg.model.net.attention, cfg.trainer.precision, cfg.data.source._target_)
"""


def test_pip_install_composes_configs_inside_and_outside_the_checkout(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python, bin_dir = env_dir / "bin" / "python", env_dir / "bin"
    # dependencies (and setuptools to build) come from this interpreter's site-packages: no
    # network; attrnet itself from `pip install .` into the fresh venv
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    # `pip install .` from a copy: setuptools' build/ folder would keep stale modules in the repo
    source = tmp_path / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--no-cache-dir", "."],
        cwd=source,
        env=env,
        check=True,
    )
    installed = env_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    installed = installed / "site-packages" / "attrnet"
    assert (installed / "conf" / "model" / "resnet50.yaml").is_file()
    assert not (installed / "conf").is_symlink()  # a copy: the install needs no checkout

    def run(command: list, cwd: Path) -> str:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, check=True
        ).stdout

    expected = ["True", "16-mixed", "attrnet.data.sources.SyntheticSource"]
    for cwd, origin in [(tmp_path, installed), (REPO, REPO / "attrnet")]:
        module_file, *values = run([python, "-c", COMPOSE], cwd).split()
        assert Path(module_file).parent == origin  # the checkout root imports the source folder
        assert values == expected
    for cwd in (tmp_path, REPO):
        job = run([bin_dir / "attrnet-train", "--cfg", "job", "model=resnet50_attention"], cwd)
        assert "attention: true" in job
    job = run([python, "-m", "attrnet.cli.train", "--cfg", "job", "model=resnet50_attention"], REPO)
    assert "attention: true" in job
