"""Checkpoints of a run: the backup a crashed run resumes from, and the best model kept for export.

Both take part in multi-worker jobs as TensorFlow asks: every worker saves (variables such as metric
totals are aggregated across workers while they are read), and the workers other than the chief save
into a temporary place of their own that they delete.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil

import keras

from alexnet import rundir
from alexnet.files import read_json, write_json
from alexnet.metrics import validation_errors
from alexnet.rundir import RunDir
from alexnet.training.cluster import SINGLE_WORKER, Task
from alexnet.training.upstream_fixes import BACKUP_PATH_ATTRIBUTES


class Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that saves at every epoch end as well as every `save_freq` steps.

    Every worker restores from the chief's backup and takes part in every save (metric variables are
    aggregated across workers while they are read); a worker other than the chief saves into a folder of
    its own beside the backup and deletes it at once. The backup is deleted by `finish`, once the run is
    complete and exported, not when fit ends.
    """

    def __init__(self, backup_dir: str, task: Task = SINGLE_WORKER, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.task = task

    @staticmethod
    def saved_epoch(backup_dir) -> int:
        """The epoch a run with this backup resumes at (0 without one): where its training data must start."""
        for name in ("training_metadata.json", "training_metadata.json.bkp"):  # the copy the parent falls back to
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                return int(read_json(os.path.join(backup_dir, name))["epoch"])
        return 0

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # the parent saves only on its step count then
            self._save_model()  # the parent's own save (weights, optimizer, epoch; double-checkpointed)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)  # the parent's makedirs races with the other workers'
        if self.task.is_chief:
            return super()._save_model()
        chief = {name: getattr(self, name) for name in BACKUP_PATH_ATTRIBUTES}
        # Beside the chief's backup, not in it: the chief deletes its backup when the run completes.
        temp = os.path.join(os.path.dirname(self.backup_dir), self.task.temp_dir_name())
        for name in BACKUP_PATH_ATTRIBUTES:
            setattr(self, name, chief[name].replace(chief["backup_dir"], temp, 1))
        os.makedirs(temp, exist_ok=True)
        try:
            super()._save_model()
        finally:
            for name, value in chief.items():
                setattr(self, name, value)
            shutil.rmtree(temp, ignore_errors=True)


class KeepBest(keras.callbacks.Callback):
    """Saves the model as .keras whenever the validation top-1 error is the lowest so far (survives resumes)
    and the epoch's training and validation losses are finite.

    Every worker saves (see Backup); only the chief keeps the file and writes the record. The best error
    so far is read from the record when training starts, so every worker decides alike.
    """

    def __init__(self, run: RunDir, task: Task = SINGLE_WORKER):
        super().__init__()
        self.path = run / rundir.BEST_MODEL
        self.record = run / rundir.BEST_RECORD
        self.task = task

    def on_train_begin(self, logs=None):
        self.best = read_json(self.record)["val_top1_error"] if self.record.exists() else None

    def on_epoch_end(self, epoch, logs=None):
        val = validation_errors(logs)
        if val is None or not all(math.isfinite(logs[key]) for key in ("loss", "val_loss")):
            return  # a diverged network never becomes the best model, however its outputs rank
        if self.best is not None and val["top1_error"] >= self.best:
            return
        self.best = val["top1_error"]
        chief = self.task.is_chief
        tmp = self.path.with_name(".best.tmp.keras" if chief else f"{self.task.temp_dir_name()}.best.keras")
        self.model.save(tmp)
        if not chief:
            tmp.unlink()
            return
        tmp.replace(self.path)  # a crash mid-save leaves the previous best intact
        write_json(self.record, {"epoch": epoch + 1, "val_top1_error": val["top1_error"],
                                 "val_top5_error": val["top5_error"]})
