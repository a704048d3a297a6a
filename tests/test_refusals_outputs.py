"""Bad-input corpus, outputs side: each case is a real console-script command as a user types it.

A refused command prints exactly one line ``error: <message>`` naming the file or field, exits
with status 2, and leaves every file that existed before unchanged (sha256). Refusals come
before any work, so no case trains; the session's ``trained_run`` gives the checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from attrnet.checkpoints import CheckpointError, load_checkpoint
from attrnet.cli import export as export_cli
from attrnet.cli import predict as predict_cli
from attrnet.cli import train as train_cli
from attrnet.cli.errors import user_error_message
from attrnet.csv_logger import ResumableCSVLogger
from attrnet.errors import DataError, RefusedOutputError
from attrnet.io import atomic_open, atomic_write_text
from attrnet.output_guard import check_outputs
from attrnet.run_folder import claim_run_folder
from tests.helpers import TINY_OVERRIDES, compose_config, needs

SCRIPTS = Path(sys.executable).parent


def _run(script: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The console script as a user runs it: its own process."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    return subprocess.run(
        [str(SCRIPTS / script), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


ENTRY_POINTS = {"attrnet-train": train_cli.main, "attrnet-predict": predict_cli.main,
                "attrnet-export": export_cli.main}  # fmt: skip


def _call(script: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The console script's entry point in this process, as its command line would run it (the
    same Hydra composition, callbacks, logging and exit status as ``_run``, without a process's
    start-up): its exit status and what it wrote to stdout and stderr."""
    out, err, status = io.StringIO(), io.StringIO(), 0
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # Hydra's job logging replaces them
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", [script, *args])
        for key, value in env.items():
            patch.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                ENTRY_POINTS[script]()
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
            except Exception:  # a bug's trace, as the process would print it (exit status 1)
                traceback.print_exc(file=err)
                status = 1
            finally:
                for handler in root.handlers:  # the run's log file is complete
                    handler.close()
                root.handlers[:], root.level = handlers, level
    return subprocess.CompletedProcess([script, *args], status, out.getvalue(), err.getvalue())


def _refused(done: subprocess.CompletedProcess, pattern: str) -> str:
    """The command exited 2 after one line ``error: ...`` matching ``pattern``, its last, and
    no traceback (what Lightning logged before, e.g. the seed, may precede it)."""
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], done.stderr
    assert "Traceback" not in done.stderr
    assert re.fullmatch(f"error: {pattern}", lines[-1]), lines[-1]
    return lines[-1]


def _sums(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (files or folders)."""
    files = [p for root in roots for p in ([root] if root.is_file() else root.rglob("*"))]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


@pytest.fixture(scope="module")
def run(trained_run: Path) -> dict:
    """The trained run, its last checkpoint, its files' checksums and its attribute names."""
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    names = load_checkpoint(ckpt)["hyper_parameters"]["spec"]["attribute_names"]
    return {"dir": trained_run, "ckpt": ckpt, "sums": _sums(trained_run), "names": names}


@pytest.fixture(scope="module")
def query(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic set's query images (the session cache that ``trained_run`` prepared)."""
    cache = tmp_path_factory.getbasetemp() / "attrnet-cache"
    return next(cache.glob("market_synthetic-*")) / "query"


def _unchanged(run: dict) -> None:
    assert _sums(run["dir"]) == run["sums"]


# ------------------------------------------------------------------------- export and predict


@needs("onnx", "onnxruntime")
def test_export_refuses_its_checkpoint_and_an_existing_file(run: dict, tmp_path: Path) -> None:
    """The issue's case (a 283 MB checkpoint replaced by ONNX), here given relative to the
    launch folder; and an earlier export."""
    relative = os.path.relpath(run["ckpt"], tmp_path)  # ../trained_run0/checkpoints/last.ckpt
    done = _call("attrnet-export", f"ckpt_path={run['ckpt']}", f"output={relative}", cwd=tmp_path)
    _refused(
        done,
        re.escape(
            f"output={relative} is the input ckpt_path={run['ckpt']}; write it to another file"
        ),
    )
    _unchanged(run)
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"an earlier export")
    done = _call("attrnet-export", f"ckpt_path={run['ckpt']}", f"output={existing}", cwd=tmp_path)
    _refused(
        done,
        re.escape(
            f"output={existing} exists; pass overwrite=true to replace it, or choose another output"
        ),
    )
    assert existing.read_bytes() == b"an earlier export"


def test_outputs_are_compared_resolved_with_inputs_and_each_other(tmp_path: Path) -> None:
    """Symbolic links, relative paths, an input folder, two outputs on one file, a folder."""
    ckpt, images = tmp_path / "last.ckpt", tmp_path / "images"
    ckpt.write_bytes(b"weights")
    images.mkdir()
    (tmp_path / "link.onnx").symlink_to(ckpt)
    inputs = {"ckpt_path": ckpt, "images_dir": images}
    refusals = {
        "link.onnx": "output=link.onnx is the input ckpt_path=",
        "images/../last.ckpt": "output=images/../last.ckpt is the input ckpt_path=",
        "images/sub/out.csv": "output=images/sub/out.csv lies inside the input folder images_dir=",
        "images": "output=images is the input images_dir=",
        ".": "output=. is a folder; give a file name",
    }
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for output, message in refusals.items():
            with pytest.raises(RefusedOutputError, match=f"^{re.escape(message)}"):
                check_outputs({"output": output}, inputs, overwrite=True)
        both = {"output": "a.png", "figure_path": str(tmp_path / "a.png")}
        with pytest.raises(RefusedOutputError, match="figure_path=.*a.png is also output"):
            check_outputs(both, inputs, overwrite=False)
        Path("old.csv").write_text("x")
        with pytest.raises(RefusedOutputError, match="output=old.csv exists; pass overwrite=true"):
            check_outputs({"output": "old.csv"}, inputs, overwrite=False)
        check_outputs({"output": "old.csv", "figure_path": "new.png"}, inputs, overwrite=True)
    finally:
        os.chdir(cwd)


def test_predict_refuses_its_inputs_and_replaces_a_file_only_with_overwrite(
    run: dict, query: Path, tmp_path: Path
) -> None:
    images = _sums(query)
    inside = query / "predictions.csv"
    arguments = [f"ckpt_path={run['ckpt']}", f"images_dir={query}"]
    done = _call("attrnet-predict", *arguments, f"output={inside}", cwd=tmp_path)
    message = f"output={inside} lies inside the input folder images_dir={query}; write it elsewhere"
    _refused(done, re.escape(message))
    assert _sums(query) == images and not inside.exists()

    csv, figure = tmp_path / "classification_test.csv", tmp_path / "predictions.png"
    csv.write_text("an earlier result\n")
    arguments.append(f"output={csv}")
    done = _call("attrnet-predict", *arguments, cwd=tmp_path)
    _refused(
        done,
        re.escape(
            f"output={csv} exists; pass overwrite=true to replace it, or choose another output"
        ),
    )
    assert csv.read_text() == "an earlier result\n"
    mode = csv.stat().st_mode
    figure_options = ["figure=true", f"figure_path={figure}"]
    done = _call("attrnet-predict", *arguments, "overwrite=true", *figure_options, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(csv.read_text().splitlines()) == 1 + len(list(query.iterdir()))
    assert csv.stat().st_mode == mode  # a replaced file keeps its mode, as open() keeps it
    umask = os.umask(0)
    os.umask(umask)
    assert figure.stat().st_mode & 0o777 == 0o666 & ~umask  # a new one gets the umask's
    _unchanged(run)


def test_predict_names_a_missing_checkpoint_and_gives_the_trace_on_request(
    query: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.ckpt"
    arguments = [f"ckpt_path={missing}", f"images_dir={query}"]
    done = _call("attrnet-predict", *arguments, cwd=tmp_path)
    _refused(done, re.escape(f"{missing}: checkpoint file does not exist"))
    done = _call("attrnet-predict", *arguments, cwd=tmp_path, HYDRA_FULL_ERROR="1")
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().endswith(f"{missing}: checkpoint file does not exist")


# -------------------------------------------------------------------------------- attrnet-train


def _train(tmp_path: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    return _call(
        "attrnet-train", *TINY_OVERRIDES, "trainer.accelerator=cpu", *overrides, cwd=tmp_path, **env
    )


def test_train_refuses_a_finished_runs_folder(run: dict, tmp_path: Path) -> None:
    """Refused before Hydra writes its files: the finished run's folder is left as it was."""
    last = run["ckpt"]
    done = _train(tmp_path, f"hydra.run.dir={run['dir']}")
    _refused(
        done,
        re.escape(
            f"the run folder {run['dir']} (hydra.run.dir) holds an earlier run's files "
            "(checkpoints, csv, metrics.json, split.csv, split.json, tensorboard); resume that "
            f"run with ckpt_path={last}, train into a new folder, or pass overwrite=true to "
            "delete them and start afresh"
        ),
    )
    done = _train(tmp_path, f"hydra.run.dir={run['dir']}", f"ckpt_path={last}", "overwrite=true")
    _refused(
        done, re.escape(f"ckpt_path={last} lies inside the run folder") + ".*drop overwrite=true"
    )
    assert not (run["dir"] / ".hydra").exists() and not list(run["dir"].glob("*.log"))
    _unchanged(run)


def _fake_run(folder: Path) -> dict[str, str]:
    """A folder with an earlier CLI run's files (small stand-ins) and one file of the user's."""
    for name in (
        "checkpoints/epoch003-mA0.7000.ckpt",
        "checkpoints/last.ckpt",
        "metrics.json",
        "split.csv",
        "split.json",
        "csv/metrics.csv",
        "tensorboard/events.out.x",
        ".hydra/config.yaml",
        "train.log",
        "notes.txt",
    ):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"earlier {name}\n")
    return _sums(folder / "notes.txt")


def test_train_overwrite_deletes_the_earlier_runs_files_first(tmp_path: Path) -> None:
    """overwrite=true: the earlier run's results, logs and Hydra log go before anything is
    written (here the run then stops at a refused value); the user's own file stays."""
    folder = tmp_path / "run"
    notes = _fake_run(folder)
    done = _train(tmp_path, f"hydra.run.dir={folder}", "overwrite=true", "data.image_size=64")
    _refused(
        done, re.escape("data.image_size must be two positive integers (height, width), got 64")
    )
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "notes.txt", "train.log"]
    assert "earlier" not in (folder / "train.log").read_text()
    assert "image_size: 64" in (folder / ".hydra" / "config.yaml").read_text()
    assert _sums(folder / "notes.txt") == notes


def test_claim_run_folder_keeps_a_resumed_runs_files(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    _fake_run(folder)
    before = _sums(folder)
    last = folder / "checkpoints" / "last.ckpt"
    claim_run_folder(compose_config("train", folder, [f"ckpt_path={last}"]))
    assert _sums(folder) == before
    with warnings.catch_warnings(record=True) as seen:
        warnings.filterwarnings("always", append=True)
        warnings.warn(
            f"Checkpoint directory {folder / 'checkpoints'} exists and is not empty.",
            UserWarning,
            stacklevel=1,
        )  # Lightning's warning: expected, ignored
    assert seen == []
    cfg = compose_config("train", folder, [f"init_from={last}"])
    with pytest.raises(RefusedOutputError, match="holds an earlier run's files"):
        claim_run_folder(cfg)  # fine-tuning is a new run
    cfg = compose_config("train", folder, [f"init_from={last}", "overwrite=true"])
    with pytest.raises(RefusedOutputError, match="init_from=.* overwrite=true would delete"):
        claim_run_folder(cfg)  # would delete the checkpoint it is to start from
    assert _sums(folder) == before


def test_a_resumed_run_keeps_its_csv_log(tmp_path: Path) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv; the run's logger appends."""
    first = ResumableCSVLogger(tmp_path, name="csv", version="")
    first.log_metrics({"a": 1.0}, step=0)
    first.save()
    again = ResumableCSVLogger(tmp_path, name="csv", version="")
    again.log_metrics({"a": 2.0, "b": 3.0}, step=1)
    again.save()
    rows = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert rows == ["a,b,step", "1.0,,0", "2.0,3.0,1"]


def test_a_run_resumed_in_its_own_folder_goes_on_there(trained_run: Path, tmp_path: Path) -> None:
    """ckpt_path inside hydra.run.dir: allowed; one more epoch, no Lightning warning about the
    folder, the CSV log keeps the earlier epochs."""
    folder = tmp_path / "run"
    shutil.copytree(trained_run, folder)
    rows = (folder / "csv" / "metrics.csv").read_text().splitlines()
    last = folder / "checkpoints" / "last.ckpt"
    done = _train(
        tmp_path,
        f"hydra.run.dir={folder}",
        f"ckpt_path={last}",
        "optimizer.second_epochs=2",
        "logger=many",  # the loggers of the run it resumes
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exists and is not empty" not in done.stderr
    assert load_checkpoint(last)["epoch"] == 2
    after = (folder / "csv" / "metrics.csv").read_text().splitlines()
    assert len(after) > len(rows)
    assert json.loads((folder / "metrics.json").read_text())["summary"]["mA"] > 0


def _checkpoint_with(path: Path, names: list[str]) -> Path:
    """A small checkpoint whose hyper-parameters name ``names`` (all the check reads)."""
    torch.save({"hyper_parameters": {"spec": {"attribute_names": names}}, "state_dict": {}}, path)
    return path


@pytest.mark.parametrize(
    ("key", "change"), [("ckpt_path", "swap"), ("ckpt_path", "drop"), ("init_from", "extra")]
)
def test_resume_and_finetune_compare_attribute_names_before_any_step(
    run: dict, tmp_path: Path, key: str, change: str
) -> None:
    """Another column order would train on with every output under the wrong name, another
    count fail in torch's size check: both are refused, with the differences, before any step."""
    names, n = list(run["names"]), len(run["names"])
    first, second, last = names[0], names[1], names[-1]
    if change == "swap":
        names[0], names[1] = second, first
        detail = f"{n} attributes are not the data's {n} in the same order (in another order: "
        detail += f"{second}, {first})"
    elif change == "drop":
        names = names[:-1]
        detail = f"{n - 1} attributes are not the data's {n} in the same order (not in the "
        detail += f"checkpoint: {last})"
    else:
        names = [*names, "umbrella"]
        detail = f"{n + 1} attributes are not the data's {n} in the same order (not in the data: "
        detail += "umbrella)"
    ckpt = _checkpoint_with(tmp_path / "other.ckpt", names)
    folder = tmp_path / "run"
    done = _train(tmp_path, f"hydra.run.dir={folder}", f"{key}={ckpt}")
    expected = f"{key}={ckpt}: the checkpoint's {detail}; give data with the checkpoint's "
    _refused(done, re.escape(f"{expected}attributes in its order, or train without {key}"))
    assert sorted(p.name for p in folder.iterdir()) == [".hydra", "train.log"]  # no step


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.image_size=[64,32,3]",
            "data.image_size must be two positive integers (height, width), got [64, 32, 3]",
        ),
        (
            "optimizer.second_epochs=-1",
            "optimizer phase 'sgd': epochs must be a whole number >= 0 (0 drops the phase), got -1",
        ),
    ],
)
def test_config_values_are_refused_where_they_are_read(
    tmp_path: Path, override: str, message: str
) -> None:
    done = _train(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", override)
    _refused(done, re.escape(message))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("image_size", 64, "data.image_size must be two positive integers (height, width), got 64"),
        ("stored_size", [0, 64], "data.stored_size must be two positive integers (height, width)"),
        ("batch_size", 0, "data.batch_size must be a positive integer, got 0"),
        ("eval_batch_size", 2.5, "data.eval_batch_size must be a positive integer, got 2.5"),
        ("num_workers", -1, "data.num_workers must be an integer >= 0, got -1"),
    ],
)
def test_the_datamodule_checks_its_values(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    cfg = compose_config("train", tmp_path, [f"data.{key}={json.dumps(value)}"])
    with pytest.raises(InstantiationException) as refused:
        instantiate(cfg.data)
    assert user_error_message(refused.value).startswith(message)


def test_a_multirun_names_the_failed_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep_options = ["data.image_size=64,[32,16]", f"hydra.sweep.dir={sweep}"]
    done = _run("attrnet-train", "-m", *TINY_OVERRIDES, *sweep_options, cwd=tmp_path)
    _refused(
        done,
        re.escape(
            f"job 0 ({sweep / '0'}): data.image_size must be two positive "
            "integers (height, width), got 64"
        ),
    )
    assert not (sweep / "1").exists()  # the sweep stops at its first refused job


# -------------------------------------------------------------------------------- other scripts


def test_every_console_script_reports_a_users_mistake_in_one_line(tmp_path: Path) -> None:
    required = "ckpt_path is required (it is ???): give it on the command line, ckpt_path=..."
    _refused(_run("attrnet-reid", cwd=tmp_path), re.escape(required))
    _refused(_run("attrnet-export", cwd=tmp_path), re.escape(required))
    _refused(
        _run("attrnet-data", "data.num_workers=-1", cwd=tmp_path),
        re.escape("data.num_workers must be an integer >= 0, got -1"),
    )
    _refused(
        _run("attrnet-aggregate", str(tmp_path / "nowhere"), cwd=tmp_path),
        re.escape(f"{tmp_path / 'nowhere'}: no such multirun folder"),
    )


def test_user_errors_and_bugs_are_told_apart(tmp_path: Path) -> None:
    """Refusals raised by attrnet's code are one line; a ValueError from a library, or any
    other exception, is a bug and keeps its traceback."""
    with pytest.raises(DataError) as data_error:
        from attrnet.data.market import list_images

        list_images(tmp_path / "none")
    assert (
        user_error_message(data_error.value) == f"{tmp_path / 'none'}: image folder does not exist"
    )
    with pytest.raises(CheckpointError) as checkpoint_error:
        load_checkpoint(tmp_path / "none.ckpt")
    assert user_error_message(checkpoint_error.value).endswith("checkpoint file does not exist")
    wrapped = InstantiationException("Error in call to target 'x':\nValueError(...)")
    wrapped.__cause__ = data_error.value
    assert user_error_message(wrapped) == user_error_message(data_error.value)
    with pytest.raises(ValueError) as library_error:
        np.zeros(2).reshape(3)
    assert user_error_message(library_error.value) is None
    assert user_error_message(RuntimeError("a bug")) is None
    missing = OmegaConf.create({"ckpt_path": "???"})
    with pytest.raises(Exception) as mandatory:
        _ = missing.ckpt_path
    assert user_error_message(mandatory.value).startswith("ckpt_path is required")


# ------------------------------------------------------------------------------ atomic outputs


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_outputs_get_the_mode_a_plain_open_gives(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
        atomic_write_text(tmp_path / "atomic.txt", "x")
        with atomic_open(tmp_path / "atomic.bin", "wb") as handle:
            handle.write(b"x")
        (tmp_path / "kept.txt").write_text("old")
        os.chmod(tmp_path / "kept.txt", 0o604)
        atomic_write_text(tmp_path / "kept.txt", "new")
    finally:
        os.umask(previous)
    plain = (tmp_path / "plain.txt").stat().st_mode
    assert plain & 0o777 == 0o666 & ~umask
    assert (tmp_path / "atomic.txt").stat().st_mode == plain
    assert (tmp_path / "atomic.bin").stat().st_mode == plain
    assert (tmp_path / "kept.txt").stat().st_mode & 0o777 == 0o604  # an existing file's own


def test_cpu_bf16_refuses_images_narrower_than_32_pixels(tmp_path: Path) -> None:
    """oneDNN's CPU bf16 kernels misbehave on 1-pixel-wide maps: refused before any step."""
    done = _train(tmp_path, "data.image_size=[32,16]", "trainer.precision=bf16-mixed")
    _refused(
        done,
        r"trainer.precision=bf16-mixed on the CPU needs data.image_size of at least "
        r"32 px per side, got \[32, 16\]: .*trainer.precision=32-true",
    )
    assert not list(tmp_path.rglob("*.ckpt"))
