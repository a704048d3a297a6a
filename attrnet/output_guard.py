"""Refuse an output path that would replace a file the command did not create in this run.

A command's outputs are checked against its inputs and the disk before any work: an output may
not be one of its input files, lie inside one of its input folders, be a folder, or name the
same file as another output; an existing file is replaced only with ``overwrite=true``. Paths
are compared resolved (symbolic links followed, relative made absolute).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from attrnet.errors import RefusedOutputError

PathLike = str | os.PathLike


def resolved(path: PathLike) -> Path:
    """``path`` absolute, with ``~`` expanded and every symbolic link on it followed."""
    return Path(path).expanduser().resolve()


def check_outputs(
    outputs: Mapping[str, PathLike], inputs: Mapping[str, PathLike | None], overwrite: bool
) -> None:
    """Raise ``RefusedOutputError`` naming the key of the first output (``{key: path}``) that
    would replace an input (``{key: path}``; ``None`` entries are skipped) or another output,
    or an existing file without ``overwrite``."""
    sources = {key: resolved(path) for key, path in inputs.items() if path is not None}
    claimed: dict[Path, str] = {}
    for key, path in outputs.items():
        target = resolved(path)
        where = f"{key}={path}"
        for source_key, source in sources.items():
            if target == source:
                raise RefusedOutputError(
                    f"{where} is the input {source_key}={inputs[source_key]}; "
                    "write it to another file"
                )
            if source.is_dir() and target.is_relative_to(source):
                raise RefusedOutputError(
                    f"{where} lies inside the input folder {source_key}={inputs[source_key]}; "
                    "write it elsewhere"
                )
        if target in claimed:
            raise RefusedOutputError(f"{where} is also {claimed[target]}; give them two files")
        claimed[target] = key
        if target.is_dir():
            raise RefusedOutputError(f"{where} is a folder; give a file name")
        if target.exists() and not overwrite:
            raise RefusedOutputError(
                f"{where} exists; pass overwrite=true to replace it, or choose another {key}"
            )
