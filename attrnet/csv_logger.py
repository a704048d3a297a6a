"""Lightning's CSV logger, keeping the rows of a run that resumes in its own folder.

Lightning's writer deletes an existing ``metrics.csv`` when it starts; a run resumed from a
checkpoint inside its folder (``attrnet.run_folder``) would lose the log of its earlier epochs.
A new run's folder holds no ``metrics.csv`` (another run's is refused or deleted before).
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    """Appends to an existing ``metrics.csv`` under its header instead of deleting it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` goes on where an earlier part of the run left it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
