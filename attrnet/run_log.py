"""The run folder's log (``<entry point>.log``): everything a console script prints, one place.

``conf/hydra/default.yaml`` configures Python logging for every ``attrnet-*`` job: the console
(messages as they are, warnings and errors on stderr) and the run folder's log file (with time
and source), both behind :class:`ChatterFilter` and :class:`RankZeroFilter`, the console also
behind :class:`FileOnlyFilter`; Lightning's loggers hand their messages to them.
:class:`RunLogCallback` (a Hydra callback, registered there too) routes Python warnings into the
same handlers and writes a failed job's traceback to its log.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

#: Messages and warnings dropped from the console and the log: third-party tips and deprecation
#: notices a user cannot act on (regular expressions, searched in the message).
CHATTER = (
    r"💡 Tip:",  # Lightning's advertisements (litlogger, litmodels)
    r"LeafSpec\)` is deprecated",  # torch's pytree deprecation, raised inside Lightning's code
    r"Consider setting `persistent_workers=True`",  # a tip, for spawned workers only
    r"Trainer already configured with model summary callbacks",  # conf/callbacks' ModelSummary
    r"Experiment with name .* not found\. Creating it\.",  # every fresh MLflow store
)


class ChatterFilter(logging.Filter):
    """Drop records whose message matches :data:`CHATTER` (captured warnings included)."""

    def __init__(self, patterns: tuple[str, ...] = CHATTER) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return self.pattern.search(record.getMessage()) is None


class RankZeroFilter(logging.Filter):
    """Keep every record on the global rank 0 and only errors on the other ranks, so a DDP run
    logs each message once (Lightning relaunches the command line once per device)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0 or record.levelno >= logging.ERROR


class FileOnlyFilter(logging.Filter):
    """Drop records marked ``file_only`` from the console: the progress lines while Lightning's
    progress bar draws on the terminal (:class:`attrnet.progress.ProgressLog`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


class LevelBelowFilter(logging.Filter):
    """Keep the records below ``level`` (the console's stdout half; stderr takes the rest)."""

    def __init__(self, level: str | int) -> None:
        super().__init__()
        self.level = logging.getLevelName(level) if isinstance(level, str) else level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


class RunLogCallback(Callback):
    """Hydra callback: Python warnings go to the job's log handlers (console and file) while the
    job runs; at its end a W&B run is closed (a multirun's next job would continue it) and a
    failed job's traceback is written to its log file (the console gets it from Hydra)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        logging.captureWarnings(True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        logging.captureWarnings(False)
        failed = job_return.status == JobStatus.FAILED
        wandb = sys.modules.get("wandb")  # imported by logger=wandb only
        if wandb is not None and wandb.run is not None:
            wandb.finish(exit_code=int(failed))
        # the exception itself: the public return_value also prints Hydra's report to stderr
        error = job_return._return_value if failed else None
        if isinstance(error, BaseException):
            self._write_failure(error)

    @staticmethod
    def _write_failure(error: BaseException) -> None:
        record = logging.getLogger(__name__).makeRecord(
            __name__,
            logging.ERROR,
            __file__,
            0,
            "the job failed:",
            (),
            (type(error), error, error.__traceback__),
        )
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
