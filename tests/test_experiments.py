"""The experiment configs as users run them: one ``attrnet-train -m`` command per study table
(tiny settings, CPU) writes one run folder per setting and the aggregated table and plot; the
aggregation notes failed and missing runs; Optuna runs two trials; the SLURM launcher composes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from attrnet.retrieval.from_config import reid_options
from tests.helpers import TINY_OVERRIDES, compose_config, needs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(command: list[str], cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _multirun(tmp_path: Path, *overrides: str) -> Path:
    """``attrnet-train -m <overrides>`` at tiny size; returns the sweep folder."""
    command = [
        _script("attrnet-train"),
        "-m",
        *overrides,
        *TINY_OVERRIDES,
        "trainer.accelerator=cpu",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"aggregate.output_dir={tmp_path / 'results'}",
    ]
    _run(command, tmp_path)
    (sweep,) = (tmp_path / "logs").glob("*/multiruns/*")
    for checkpoint in sweep.rglob("*.ckpt"):  # ~0.3 GB each; the tests read only the tables
        checkpoint.unlink()
    return sweep


def _table(markdown: Path) -> list[dict[str, str]]:
    """Rows of the markdown table in ``markdown`` as dicts keyed by the header."""
    lines = [line for line in markdown.read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


@pytest.fixture(scope="module")
def table1_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _multirun(tmp_path_factory.mktemp("table1"), "experiment=table1_attention")


def test_table1_attention(table1_sweep: Path) -> None:
    results = table1_sweep.parents[3] / "results"
    rows = _table(results / "table1_attention.md")
    assert [r["model"] for r in rows] == ["resnet50", "resnet50_attention"]
    for row in rows:
        assert row["epochs"] == "2"
        for metric in ("macro_precision", "macro_recall", "macro_f1", "mA"):
            assert 0.0 <= float(row[metric]) <= 1.0
    text = (results / "table1_attention.md").read_text()
    assert "attrnet-train -m experiment=table1_attention" in text
    assert (results / "table1_attention.png").read_bytes().startswith(PNG_MAGIC)
    assert "attention: true" in (table1_sweep / "1" / ".hydra" / "config.yaml").read_text()


def test_sweep_jobs_compare_in_tensorboard_hparams(table1_sweep: Path) -> None:
    """``tensorboard --logdir <sweep folder>``: one run per job, each an HParams session with
    the swept setting, the final metrics as scalars and a successful end."""
    runs = EventMultiplexer().AddRunsFromDirectory(str(table1_sweep)).Reload()
    assert sorted(runs.Runs()) == ["0/tensorboard", "1/tensorboard"]
    sessions = runs.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME)
    models = []
    for run in ("0/tensorboard", "1/tensorboard"):
        start = hparams_metadata.parse_session_start_info_plugin_data(
            sessions[run][hparams_metadata.SESSION_START_INFO_TAG]
        )
        models.append(start.hparams["model"].string_value)
        end = hparams_metadata.parse_session_end_info_plugin_data(
            sessions[run][hparams_metadata.SESSION_END_INFO_TAG]
        )
        assert end.status == api_pb2.STATUS_SUCCESS
        scalars = runs.GetAccumulator(run).Tags()["scalars"]
        assert {"best/mA", "val/mA", "best/macro_f1"} <= set(scalars)
    assert models == ["resnet50", "resnet50+attention"]


def test_aggregate_notes_failed_and_missing_runs(table1_sweep: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    shutil.copytree(table1_sweep, sweep, ignore=shutil.ignore_patterns("tensorboard"))
    (sweep / "1" / "metrics.json").unlink()  # a run that failed
    multirun = OmegaConf.load(sweep / "multirun.yaml")  # a third job that never started
    multirun.hydra.sweeper.params.model = "resnet50,resnet50_attention,resnet50"
    OmegaConf.save(multirun, sweep / "multirun.yaml")
    out = tmp_path / "out"
    _run([_script("attrnet-aggregate"), str(sweep), "--output-dir", str(out)], tmp_path)
    rows = _table(out / "table1_attention.md")
    assert [r["mA"] == "n/a" for r in rows] == [False, True]
    text = (out / "table1_attention.md").read_text()
    assert "run 1 (model=resnet50_attention): no metrics.json" in text
    assert "1 of 3 runs never started (job 2)" in text
    _run(
        [_script("attrnet-aggregate"), str(sweep), "--output-dir", str(out), "--metrics", "mA"],
        tmp_path,
    )
    assert list(_table(out / "table1_attention.md")[0]) == ["run", "model", "epochs", "mA"]


@pytest.mark.parametrize(
    ("experiment", "overrides", "column", "settings", "metrics"),
    [
        (
            "table2_distance",
            [],
            "model",
            ["resnet50"] * 4 + ["resnet50_attention"] * 4,
            ["rank1", "rank5", "mAP"],
        ),
        (
            "optimizer_ablation",
            ["optimizer.epochs=2"],  # equal totals: sgd/adamw 2, swap 1 + 1 (tiny settings)
            "optimizer",
            ["sgd", "adamw", "swap"],
            ["mA", "macro_f1", "instance_f1"],
        ),
        (
            "loss_ablation",
            [],
            "loss",
            ["none", "inverse_frequency", "sqrt_inverse_frequency", "deepmar", "sqrt_deepmar"],
            ["mA", "macro_precision", "macro_recall", "macro_f1", "instance_f1"],
        ),
    ],
)
def test_experiment_produces_its_table(
    tmp_path: Path,
    experiment: str,
    overrides: list[str],
    column: str,
    settings: list[str],
    metrics: list[str],
) -> None:
    sweep = _multirun(tmp_path, f"experiment={experiment}", *overrides)
    rows = _table(tmp_path / "results" / f"{experiment}.md")
    assert [r[column] for r in rows] == settings
    assert all(r["epochs"] == "2" for r in rows)
    for row in rows:
        assert all(0.0 <= float(row[m]) <= 1.0 for m in metrics)
    assert (tmp_path / "results" / f"{experiment}.png").read_bytes().startswith(PNG_MAGIC)
    if experiment == "table2_distance":  # re-ID ran in each training run's folder
        assert [r["distance"] for r in rows[:4]] == ["euclidean", "weighted", "cosine", "random"]
        for run in ("0", "1"):
            saved = json.loads((sweep / run / "reid_metrics.json").read_text())
            assert saved["checkpoint"].startswith(str(sweep / run / "checkpoints"))


@needs("optuna", "hydra_plugins.hydra_optuna_sweeper")
def test_optuna_search_runs_two_trials(tmp_path: Path) -> None:
    sweep = _multirun(tmp_path, "hparams_search=mA_optuna", "hydra.sweeper.n_trials=2")
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    values = [json.loads((sweep / r / "metrics.json").read_text())["summary"]["mA"] for r in "01"]
    assert best.best_value == pytest.approx(max(values))
    assert set(best.best_params) >= {"optimizer.first_lr", "loss", "model.net.attention"}
    rows = _table(tmp_path / "results" / "mA_optuna.md")
    assert [r["run"] for r in rows] == ["0", "1"]
    assert "Optuna best value" in (tmp_path / "results" / "mA_optuna.md").read_text()


@needs("submitit", "hydra_plugins.hydra_submitit_launcher")
def test_slurm_launcher_composes_to_an_sbatch_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import submitit

    with initialize_config_module("attrnet.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hydra/launcher=slurm",
                "trainer=ddp",
                "trainer.devices=4",
                "trainer.num_nodes=2",
                "hydra.launcher.partition=gpu",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
            ],
            return_hydra_config=True,
        )
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher_cfg.nodes, launcher_cfg.tasks_per_node, launcher_cfg.gpus_per_node) == (
        2,
        4,
        4,
    )
    # the launcher's own parameter mapping, up to the submission (a stub srun, no sbatch call)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    submitted = []
    monkeypatch.setattr(
        submitit.AutoExecutor, "map_array", lambda self, *args: submitted.append(self) or []
    )
    launcher = instantiate(launcher_cfg)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["model=resnet50"]], initial_job_idx=0)
    script = submitted[0]._executor._make_submission_file_text("attrnet-train", "uid")
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=240",
        "#SBATCH --mem=64GB",
    ):
        assert line in script, script


def test_reid_step_takes_attrnet_reid_options(tmp_path: Path) -> None:
    options = ["distances=[weighted]", "flip=true"]
    cfg = compose_config("train", tmp_path, ["reid=default", *(f"reid.{o}" for o in options)])
    standalone = compose_config("reid", tmp_path, ["ckpt_path=best.ckpt", *options])
    assert reid_options(cfg.reid) == reid_options(standalone)  # one meaning in both
    assert (cfg.reid.distances, cfg.reid.flip, cfg.reid.mode) == (["weighted"], True, "val")
    assert compose_config("train", tmp_path).get("reid") is None  # no re-ID step by default
    with pytest.raises(ConfigCompositionException, match="Could not override 'reid.distance'"):
        compose_config("train", tmp_path, ["reid=default", "reid.distance=[weighted]"])


def test_reid_options_of_a_standalone_run_are_not_the_steps() -> None:
    """The step scores the run's own validation identities with the run's own Trainer: the
    options of a standalone attrnet-reid run (split_file, device, num_workers) are not in it."""
    for option in ("split_file=other/split.json", "device=cpu", "num_workers=2"):
        with pytest.raises(
            ConfigCompositionException, match=f"Could not override 'reid.{option.split('=')[0]}'"
        ):
            compose_config("train", Path("unused"), ["reid=default", f"reid.{option}"])
        assert compose_config("reid", Path("unused"), ["ckpt_path=x.ckpt", option])
