"""Checkpoint files: atomic saves, safe loads, and best-checkpoint bookkeeping across resumes."""

from __future__ import annotations

import glob
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_info

from attrnet.io import atomic_open

_REFUSED = re.compile(r"WeightsUnpickler error:\s*(.+)")


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, or carries more than weights and plain values."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: a kill during a save keeps the previous file.

    Each checkpoint is written to a temporary file beside its target, fsynced, and renamed over
    the target. The temporary name (``.<name>.<random>.tmp``) never ends in ``.ckpt``; one left by
    a killed save is removed at the next save of the same file.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        target = Path(path)
        # the names attrnet.io.atomic_open gives its temporary files
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            stale.unlink(missing_ok=True)
        with atomic_open(target, "wb") as handle:
            torch.save(checkpoint, handle)
        _fsync_directory(target.parent)


def _fsync_directory(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain values, never code.

    Raises ``CheckpointError`` naming the file when it is missing, truncated or corrupt, or when
    its pickle refers to anything but weights (a code payload is refused, never run).
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: checkpoint file does not exist")
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = _REFUSED.search(str(error))
        detail = found.group(1).split(". ")[0] if found else ""
        if detail and not detail.startswith("Unsupported operand"):
            raise CheckpointError(
                f"{file}: the checkpoint contains non-weight objects ({detail}); attrnet loads "
                "checkpoints with weights_only=True and refuses to execute code from checkpoints"
            ) from None
        raise CheckpointError(f"{file}: truncated or corrupt checkpoint (bad pickle)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        reason = str(error).split(". ")[0] or type(error).__name__
        raise CheckpointError(f"{file}: truncated or corrupt checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{file}: not a checkpoint (holds a {type(checkpoint).__name__})")
    return checkpoint


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best-k bookkeeping survives a resume into a new run folder.

    Lightning forgets the best scores when the checkpoint folder changed, so a resumed run would
    pick its best among the epochs after the resume only. This keeps them; the earlier folder's
    files stay untouched (Lightning never removes checkpoints outside ``dirpath``), and ones that
    no longer exist are forgotten.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)
            return
        kept = {
            path: score
            for path, score in state_dict.get("best_k_models", {}).items()
            if Path(path).is_file()
        }
        self.best_k_models = kept
        if not kept:
            return
        best, worst = (max, min) if self.mode == "max" else (min, max)
        self.best_model_path = best(kept, key=kept.get)
        self.best_model_score = kept[self.best_model_path]
        self.kth_best_model_path = worst(kept, key=kept.get)
        self.kth_value = kept[self.kth_best_model_path]
        rank_zero_info(f"Resumed run: best checkpoint so far is {self.best_model_path}")
