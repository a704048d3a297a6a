"""A user's mistake as one line ``error: <message>`` on stderr and exit status 2, no traceback.

User mistakes: a ``ValueError`` that attrnet's own code raises (``DataError``,
``CheckpointError``, ``RefusedOutputError`` and every refused config value), a missing file, and
a mandatory config value left at ``???``. Any other exception is a bug and keeps its traceback,
as does everything with ``HYDRA_FULL_ERROR=1``. In a multirun the failed job is named and the
sweep stops there.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf.errors import MissingMandatoryValue

#: The exit status of a refused input (1 stays for failures such as an export's parity check).
USER_ERROR_STATUS = 2
Task = TypeVar("Task", bound=Callable[..., Any])


def _raised_by_attrnet(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is attrnet's code."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0] == "attrnet"


def user_error_message(error: BaseException) -> str | None:
    """The one-line message of a user's mistake; ``None`` for a bug."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__  # a constructor's refusal, wrapped by hydra.utils.instantiate
    if isinstance(error, MissingMandatoryValue):
        key = error.full_key or error.key
        return f"{key} is required (it is ???): give it on the command line, {key}=..."
    if isinstance(error, FileNotFoundError):
        if error.filename is not None:
            return f"{error.filename}: {error.strerror or 'no such file or directory'}"
        return str(error)
    if isinstance(error, ValueError) and _raised_by_attrnet(error):
        return " ".join(str(error).split())  # one line, whatever the message's line breaks
    return None


def report_user_error(message: str) -> NoReturn:
    """``error: <message>`` (with the job in a multirun) on stderr, and in the run's log where
    there is one; then exit with status 2."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hydra = HydraConfig.get()
        message = f"job {hydra.job.num} ({hydra.runtime.output_dir}): {message}"
    line = f"error: {message}"
    print(line, file=sys.stderr, flush=True)
    _log_to_files(line)
    sys.exit(USER_ERROR_STATUS)


def _log_to_files(line: str) -> None:
    """The line in the run's log file too (the job's file handler, where there is one)."""
    record = logging.LogRecord("attrnet", logging.ERROR, __file__, 0, line, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def reports_user_errors(task: Task) -> Task:
    """Decorate a console script's entry point (under ``@hydra.main``, or a plain one) so a
    user's mistake ends it with one line and status 2 (``HYDRA_FULL_ERROR=1``: the trace)."""

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except Exception as error:
            message = user_error_message(error)
            if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            report_user_error(message)

    return run  # type: ignore[return-value]
