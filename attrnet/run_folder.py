"""One run per folder: a training run refuses a folder that holds another run's files.

Checked before the run writes anything. The folder may hold them only when the run resumes
from a checkpoint inside it (``ckpt_path=``: the same run goes on, its files are kept), or with
``overwrite=true``, which deletes them first, so a folder never mixes two runs' checkpoints,
logs and results.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig

from attrnet.errors import RefusedOutputError
from attrnet.output_guard import resolved

#: What a training run writes into its folder itself (``datamodule.save_split``,
#: ``training.write_report``, the re-ID step) and where conf/logger's loggers write by default
#: (whichever the earlier run used); the configured checkpoint and logger folders are added.
RESULT_NAMES = (
    "split.csv",
    "split.json",
    "metrics.json",
    "reid_metrics.json",
    "reid_test.txt",
    "ranked_lists",
    "tensorboard",
    "csv",
    "mlflow.db",
    "mlartifacts",
    "wandb",
)


def run_outputs(cfg: DictConfig) -> list[Path]:
    """What a training run of ``cfg`` writes inside its folder (``cfg.paths.output_dir``): its
    result files, the callbacks' checkpoint folders (``dirpath``) and the loggers' folders."""
    folder = resolved(cfg.paths.output_dir)
    paths = [folder / name for name in RESULT_NAMES]
    for callback in (cfg.get("callbacks") or {}).values():
        if callback is not None and callback.get("dirpath"):
            paths.append(resolved(callback.dirpath))
    for logger in (cfg.get("logger") or {}).values():
        if logger is not None:
            paths += [resolved(path) for path in _logger_paths(logger)]
    return sorted({path for path in paths if path != folder and path.is_relative_to(folder)})


def _logger_paths(logger: DictConfig) -> list[Path]:
    """Where a logger config writes: its folder (TensorBoard, CSV: save_dir/name; W&B:
    save_dir/wandb), an MLflow SQLite store and its artifact folder."""
    paths = []
    if logger.get("save_dir"):
        wandb = str(logger.get("_target_", "")).endswith("WandbLogger")
        name = "wandb" if wandb else str(logger.get("name") or "")
        paths.append(Path(logger.save_dir) / name)
    uri = str(logger.get("tracking_uri") or "")
    if uri.startswith("sqlite:///"):
        paths.append(Path(uri.removeprefix("sqlite:///")))
    if logger.get("artifact_location"):
        paths.append(Path(logger.artifact_location))
    return paths


def _present(path: Path) -> bool:
    """A file, or a folder that is not empty."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def claim_run_folder(cfg: DictConfig, hydra_files: Sequence[Path] = ()) -> None:
    """Make ``cfg.paths.output_dir`` this run's own before anything is written into it.

    A folder holding another run's files is refused (``RefusedOutputError`` naming them and the
    ways out) unless ``cfg.ckpt_path`` lies inside it (resuming that run: nothing is touched) or
    ``cfg.overwrite`` is set: then those files, and ``hydra_files`` (the earlier run's Hydra
    log, which the new run would append to), are deleted. Runs on rank zero only: other DDP
    processes start once rank zero has written its own files."""
    if rank_zero_only.rank != 0:
        return
    folder = resolved(cfg.paths.output_dir)
    overwrite = bool(cfg.get("overwrite"))
    resume = cfg.get("ckpt_path")
    if resume and resolved(resume).is_relative_to(folder):
        if overwrite:
            raise RefusedOutputError(
                f"ckpt_path={resume} lies inside the run folder {folder}: resuming continues that "
                "run and keeps its files, which overwrite=true would delete; drop overwrite=true"
            )
        for path in run_outputs(cfg):  # Lightning's warning about them: expected here
            message = f"Checkpoint directory {path} exists and is not empty"
            warnings.filterwarnings("ignore", re.escape(message))
        return
    found = [path for path in run_outputs(cfg) if _present(path)]
    if not found:
        return
    names = ", ".join(str(path.relative_to(folder)) for path in found)
    if not overwrite:
        last = next((p for d in found if d.is_dir() for p in sorted(d.glob("last.ckpt"))), None)
        resume_hint = f"ckpt_path={last}" if last else "ckpt_path=<one of its checkpoints>"
        raise RefusedOutputError(
            f"the run folder {folder} (hydra.run.dir) holds an earlier run's files ({names}); "
            f"resume that run with {resume_hint}, train into a new folder, or pass "
            "overwrite=true to delete them and start afresh"
        )
    start = cfg.get("init_from")
    if start and any(resolved(start).is_relative_to(path) for path in found):
        raise RefusedOutputError(
            f"init_from={start} is among the earlier run's files in {folder} that overwrite=true "
            "would delete; copy it out of the folder first"
        )
    for path in [*found, *(p for p in hydra_files if p.is_file())]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    rank_zero_info(f"overwrite=true: deleted the earlier run's files in {folder}: {names}")
