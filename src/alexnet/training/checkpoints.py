"""Checkpoints of a run: the backup a stopped run resumes from, and the best model kept for export.

A backup is two files in RUN/backup/: `step-<global step>.weights.h5` (weights and optimizer, from
model.save_weights) and `step-<global step>.json`, its manifest: where training stands (the epoch, the steps
of it already trained), the running sums of the epoch's metrics (each a mean: a total and a count, so the
sums of the steps before a stop add to those after it), and the size and SHA-256 of the weights file. The
weights are written under a temporary name, flushed to the disk and renamed into place; the manifest is
written last, atomically, so a backup without one never existed. The two newest are kept.
A backup whose file is missing, short or altered is named and the previous one is used (`find_backup`).

Keras's BackupAndRestore is not used: it resumes an epoch from its first step (the data position is not
saved, so the replayed batches are trained twice), copies its files in place (a crash mid-copy damages
both), and checks nothing when it reads them back.

Both checkpoints take part in multi-worker jobs as TensorFlow asks: every worker saves (variables such as
metric totals are aggregated across workers while they are read), and the workers other than the chief
save into a temporary place of their own that they delete.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from alexnet import rundir
from alexnet.errors import DataError, DiskFullError
from alexnet.metrics import validation_errors
from alexnet.records import BackupManifest, BestEpoch, now
from alexnet.rundir import RunDir
from alexnet.training.cluster import SINGLE_WORKER, Task

KEPT_BACKUPS = 2


@dataclasses.dataclass(frozen=True)
class Position:
    """Where training stands: the epoch to train (0-based) and how many of its steps are already trained."""

    epoch: int = 0
    step: int = 0


START = Position()  # a run that has not trained yet


@dataclasses.dataclass(frozen=True)
class SavedBackup:
    """An intact backup: its files, where it stands, and the epoch metrics' running sums at that point."""

    weights: Path
    manifest: Path
    position: Position
    metrics: dict[str, float]  # metric variable path: value


def find_backup(backup_dir: str | Path) -> SavedBackup | None:
    """The newest intact backup in backup_dir, None when there is none.

    Each damaged one (unreadable manifest, missing or short file, another checksum) is named in one line on
    stdout and passed over for the one before it. DataError when there are backups and every one is damaged:
    the run's progress would be lost, so that is left to the user to decide.
    """
    manifests = sorted(Path(backup_dir).glob("step-*.json"), reverse=True)
    damaged = []
    for manifest in manifests:
        problem, backup = _check(manifest)
        if backup is not None:
            if damaged:
                print(f"resuming from the backup before: {manifest.with_suffix('').name}", flush=True)
            return backup
        damaged.append(manifest.with_suffix("").name)
        print(f"backup {manifest.with_suffix('')} is damaged ({problem})", flush=True)
    if damaged:
        raise DataError(f"every backup in {backup_dir} is damaged ({', '.join(damaged)}; each named above): move "
                        f"that folder aside to train the run again from its start, or restore it from a copy")
    return None


def _check(manifest: Path) -> tuple[str, SavedBackup | None]:
    """(what is wrong, None) or ("", the backup) for one manifest and its weights file."""
    try:
        record = BackupManifest.read(manifest)
    except OSError as e:  # unreadable, or a RecordError (a DataError, an OSError): named, passed over
        return f"its manifest {manifest.name} cannot be read: {e}", None
    weights = manifest.with_name(record.weights)
    if not weights.is_file():
        return f"{weights.name} is missing", None
    if weights.stat().st_size != record.bytes:
        return f"{weights.name} has {weights.stat().st_size:,} bytes, {record.bytes:,} were written", None
    if file_sha256(weights) != record.sha256:
        return f"{weights.name} does not match its SHA-256", None
    return "", SavedBackup(weights, manifest, Position(record.epoch, record.step), record.metrics)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def is_disk_full(error: BaseException) -> bool:
    """Whether an error from a writer (Python, h5py, TensorFlow's C++ file system) means the device is full."""
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


def state_bytes(model: keras.Model) -> int:
    """The bytes of the model's and its optimizer's variables: about what a backup or a .keras file takes."""
    variables = [*model.variables, *(model.optimizer.variables if model.optimizer else [])]
    return sum(int(np.prod(v.shape)) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize for v in variables)


def disk_full_error(path: Path, needed: int) -> DiskFullError:
    """DiskFullError naming the path, the space a write needed and what is free on its device."""
    free = shutil.disk_usage(path if path.exists() else path.parent).free
    return DiskFullError(f"no space left on the device holding {path} (writing it needs about {needed / 1e6:,.1f} MB, "
                         f"{free / 1e6:,.1f} MB are free): free space there or train with another --logs, then run "
                         f"the same command again to resume from the last backup")


class Backup(keras.callbacks.Callback):
    """Backs up the run (module doc) at the end of every epoch and, with every_steps, every that many steps;
    `save` does it at any step (a stop on a signal). `resumed`: the backup the driver restored; when it stands
    mid-epoch, its metric sums are added to the resumed epoch's after its first step (fit resets the metrics
    when the epoch begins, and builds some of them only in that step).

    Every worker takes part in every save; one other than the chief saves into a folder of its own beside
    the backup and deletes it at once. The backup is deleted by `finish`, once the run is complete.
    """

    def __init__(self, backup_dir: str | Path, steps_per_epoch: int, every_steps: int = 0,
                 task: Task = SINGLE_WORKER, resumed: SavedBackup | None = None):
        super().__init__()
        self.dir, self.steps_per_epoch, self.every_steps = Path(backup_dir), steps_per_epoch, every_steps
        self.task, self.resumed = task, resumed
        self.epoch = 0

    def _global_step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.resumed and self.resumed.position.step and self.epoch == self.resumed.position.epoch:
            for variable in self.model.metrics_variables:  # the sums of the steps trained before the stop
                variable.assign(variable + self.resumed.metrics[variable.path])
            self.resumed = None
        if self.every_steps and self._global_step() % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save(Position(epoch + 1, 0))

    def save(self, position: Position | None = None) -> Path:
        """Writes a backup of the model as it is now (position: where it stands; by default the current step
        of this epoch); returns the weights file (the chief's)."""
        step = self._global_step()
        position = position or Position(self.epoch, step - self.epoch * self.steps_per_epoch)
        name = f"step-{step:09d}"
        folder = self.dir if self.task.is_chief else self.dir.parent / self.task.temp_dir_name()
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / f"{name}.weights.h5"
        partial = folder / f".{name}.partial.weights.h5"  # Keras wants the .weights.h5 ending
        metrics = {v.path: float(keras.ops.convert_to_numpy(v)) for v in self.model.metrics_variables}
        try:
            self.model.save_weights(partial, overwrite=True)
            if not self.task.is_chief:
                return weights
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())  # on the disk before the rename makes it the backup
            os.replace(partial, weights)
            BackupManifest(weights=weights.name, epoch=position.epoch, step=position.step, global_step=step,
                           bytes=weights.stat().st_size, sha256=file_sha256(weights), metrics=metrics,
                           saved=now()).write(folder / f"{name}.json")
        except Exception as e:
            if is_disk_full(e):
                raise disk_full_error(weights, state_bytes(self.model)) from e
            raise
        finally:
            partial.unlink(missing_ok=True)
            if not self.task.is_chief:
                shutil.rmtree(folder, ignore_errors=True)
        self._prune()
        return weights

    def _prune(self) -> None:
        """Deletes all but the KEPT_BACKUPS newest backups, manifest first (a backup without one is gone)."""
        for manifest in sorted(self.dir.glob("step-*.json"), reverse=True)[KEPT_BACKUPS:]:
            manifest.unlink(missing_ok=True)
            manifest.with_name(manifest.name.replace(".json", ".weights.h5")).unlink(missing_ok=True)


def restore(model: keras.Model, backup: SavedBackup) -> None:
    """Loads a backup's weights and optimizer into a built, compiled model."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(backup.weights)


class KeepBest(keras.callbacks.Callback):
    """Saves the model as .keras whenever the validation top-1 error is the lowest so far (survives resumes)
    and the epoch's training and validation losses are finite.

    Every worker saves (see Backup); only the chief keeps the file and writes the record. The best error
    so far is read from the record when training starts, so every worker decides alike. Keras's
    ModelCheckpoint(save_best_only=True) keeps its best in memory (a resumed run forgets it), saves a
    non-finite epoch's model and has no multi-worker handling (every worker would write the one file):
    hence this one.
    """

    def __init__(self, run: RunDir, task: Task = SINGLE_WORKER):
        super().__init__()
        self.path = run / rundir.BEST_MODEL
        self.record = run / rundir.BEST_RECORD
        self.task = task

    def on_train_begin(self, logs=None):
        self.best = BestEpoch.read(self.record).val_top1_error if self.record.exists() else None

    def on_epoch_end(self, epoch, logs=None):
        val = validation_errors(logs)
        if val is None or not all(math.isfinite(logs[key]) for key in ("loss", "val_loss")):
            return  # a diverged network never becomes the best model, however its outputs rank
        if self.best is not None and val.top1_error >= self.best:
            return
        self.best = val.top1_error
        chief = self.task.is_chief
        tmp = self.path.with_name(".best.tmp.keras" if chief else f"{self.task.temp_dir_name()}.best.keras")
        try:
            self.model.save(tmp)
        except Exception as e:
            tmp.unlink(missing_ok=True)
            if is_disk_full(e):
                raise disk_full_error(self.path, state_bytes(self.model)) from e
            raise
        if not chief:
            tmp.unlink()
            return
        tmp.replace(self.path)  # a crash mid-save leaves the previous best intact
        BestEpoch(epoch + 1, val.top1_error, val.top5_error).write(self.record)
