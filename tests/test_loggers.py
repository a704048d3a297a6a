"""The logger group offline: one tiny ``attrnet-train logger=[mlflow,wandb,csv]`` run, as a user
starts it, leaves the same metrics in MLflow's local store, the W&B offline run and the CSV log
as in ``metrics.json``; the TensorBoard-only views are skipped without a word."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hydra.utils import instantiate

from tests.helpers import TINY_OVERRIDES, compose_config, needs

pytestmark = needs("mlflow", "wandb")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One tiny run with the three non-TensorBoard loggers, MLflow first (the Trainer's main
    logger); W&B's settings and caches stay in the temporary folder."""
    base = tmp_path_factory.mktemp("loggers")
    wandb_home = {name: str(base / name) for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR")}
    env = {**os.environ, **wandb_home, "ATTRNET_CACHE": str(base / "cache")}
    command = [
        str(Path(sys.executable).parent / "attrnet-train"),
        *TINY_OVERRIDES,
        "trainer.accelerator=cpu",
        "logger=[mlflow,wandb,csv]",
        f"hydra.run.dir={base / 'run'}",
    ]
    done = subprocess.run(command, cwd=base, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return base / "run", done


@pytest.mark.parametrize("choice", ["tensorboard", "csv", "mlflow", "wandb", "many"])
def test_logger_choices_write_into_the_run_folder(choice: str, tmp_path: Path) -> None:
    """Each choice composes and builds its Lightning loggers, every file under the run folder;
    ``many`` is the list ``[tensorboard,csv]``."""
    cfg = compose_config("train", tmp_path / "run", [f"logger={choice}"])
    loggers = [instantiate(section) for section in cfg.logger.values()]
    kinds = [type(lg).__name__.removesuffix("Logger").lower() for lg in loggers]
    kinds = ["csv" if kind == "resumablecsv" else kind for kind in kinds]  # attrnet's CSVLogger
    assert kinds == (["tensorboard", "csv"] if choice == "many" else [choice])
    where = [lg.save_dir or cfg.logger.mlflow.tracking_uri for lg in loggers]
    assert all(str(tmp_path / "run") in str(path) for path in where)
    listed = compose_config("train", tmp_path / "run", ["logger=[tensorboard,csv]"])
    assert (cfg.logger == listed.logger) == (choice == "many")


def _best_mA(run: Path) -> float:
    """The best checkpoint's validation mA as metrics.json has it (logged as best/mA)."""
    return json.loads((run / "metrics.json").read_text())["summary"]["mA"]


def test_csv_holds_the_curves_and_the_best_checkpoint(run) -> None:
    folder, _ = run
    table = pd.read_csv(folder / "csv" / "metrics.csv")
    assert len(table["val/mA"].dropna()) == 2  # one validation per epoch
    assert table["best/mA"].dropna().tolist() == [pytest.approx(_best_mA(folder))]


def test_mlflow_store_in_the_run_folder(run) -> None:
    import mlflow

    folder, _ = run
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["run_folder"] == str(folder)
    assert logged.data.metrics["best/mA"] == pytest.approx(_best_mA(folder))
    curve = client.get_metric_history(logged.info.run_id, "val/mA")
    csv = pd.read_csv(folder / "csv" / "metrics.csv").dropna(subset=["val/mA"])
    assert [(m.step, m.value) for m in curve] == [
        (s, pytest.approx(v)) for s, v in zip(csv["step"], csv["val/mA"], strict=True)
    ]
    assert logged.data.params  # the module's hyper-parameters
    assert not list(folder.glob("**/mlruns"))  # no file store, nothing outside the run folder


BLOCK, HEADER = 32768, 7  # W&B's run file: LevelDB log blocks of protobuf records


def _wandb_records(path: Path) -> Iterator[Any]:
    """The records of a W&B run file (``run-<id>.wandb``), which wandb itself reads in Go only."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:HEADER])[:2] == (b":W&B", 0xBEE1)
    index, pending = HEADER, b""
    while index + HEADER <= len(data):
        if BLOCK - index % BLOCK < HEADER:  # a block's tail too short for a header: padding
            index += BLOCK - index % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[index : index + HEADER])
        chunk = data[index + HEADER : index + HEADER + length]
        index += HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first | middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_run_in_the_run_folder(run) -> None:
    folder, _ = run
    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    history, exit_codes = [], []
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = record.history.item  # "val/mA" is stored as the nested key [val, mA]
            row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in items}
            history.append(row)
        elif kind == "exit":
            exit_codes.append(record.exit.exit_code)
    assert exit_codes == [0]  # closed at the job's end, as a success
    assert len([row for row in history if "val/mA" in row]) == 2
    (best,) = [row for row in history if "best/mA" in row]
    assert best["best/mA"] == pytest.approx(_best_mA(folder))


def test_tensorboard_views_are_skipped_quietly(run) -> None:
    """No TensorBoard logger: no tensorboard folder, no warning in the log or on stderr (where
    only W&B's own lines appear), and the run's log still holds the report."""
    folder, done = run
    assert not (folder / "tensorboard").exists()
    log = (folder / "train.log").read_text()
    warnings = [line for line in log.splitlines() if "[WARNING]" in line]
    assert all("attributes without a positive or a negative" in w for w in warnings), warnings
    assert "[ERROR]" not in log and "Final metrics" in log
    noted = [line for line in done.stderr.splitlines() if not line.startswith("wandb:")]
    assert all("attributes without a positive or a negative" in line for line in noted), noted
