"""Checkpoints of a run: the backups a stopped run resumes from, and the best model kept for export.

A backup is two files in RUN/backup/: `step-<global step>.npz` (the model's and the optimizer's variables,
alexnet/training/snapshots.py) and `step-<global step>.json`, its manifest: where training stands (the epoch,
the steps of it already trained), the running sums of the epoch's metrics (each a mean: a total and a count, so
the sums of the steps before a stop add to those after it), and the size and SHA-256 of the npz file. The file
is written under a temporary name, flushed to the disk and renamed into place; the manifest is written last,
atomically, so a backup without one never existed. The two newest are kept. A backup whose file is missing,
short or altered is named and the previous one is used (`find_backup`).

When: at the end of every epoch, every train.backup_every_seconds (on by default: a SIGKILL, an out-of-memory
kill or a lost machine loses at most that much training), every train.backup_every_steps, and on SIGTERM or
SIGINT. Each backup is a snapshot taken on the step and written in the background (snapshots.py); the best
model is written from the snapshot of its epoch's end, in the same background write, never serialised again.

Keras's BackupAndRestore is not used: it resumes an epoch from its first step (the data position is not
saved, so the replayed batches are trained twice), copies its files in place (a crash mid-copy damages
both), checks nothing when it reads them back, and writes on the training step.

In a multi-worker job every worker takes each snapshot at the same step (agreement.py says how they agree on
a timed one); only the chief writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from alexnet import rundir
from alexnet.errors import DataError, DiskFullError
from alexnet.metrics import validation_errors
from alexnet.records import BackupManifest, BestEpoch, now
from alexnet.rundir import RunDir
from alexnet.training.agreement import JobAgreement, Request
from alexnet.training.cluster import SINGLE_WORKER, Task
from alexnet.training.snapshots import (
    BackgroundWriter,
    HostCopy,
    Position,
    Snapshot,
    return_freed_memory,
    save_keras_file,
    state_variables,
    take_snapshot,
    write_npz,
)

KEPT_BACKUPS = 2


@dataclasses.dataclass(frozen=True)
class SavedBackup:
    """An intact backup: its files, where it stands, and the epoch metrics' running sums at that point."""

    weights: Path
    manifest: Path
    position: Position
    metrics: dict[str, float]


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
    """(what is wrong, None) or ("", the backup) for one manifest and its file."""
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


@contextlib.contextmanager
def naming_a_full_disk(path: Path, needed: int):
    """Turns an error of the writes inside that means the device is full into DiskFullError naming path and
    the bytes they needed; other errors pass as they are."""
    try:
        yield
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(path, needed) from e
        raise


def stage_backup(snapshot: Snapshot, folder: Path) -> Path:
    """Writes the snapshot's npz under a temporary name in folder, flushed to the disk; returns that path
    (commit_backup makes it the backup)."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".step-{snapshot.global_step:09d}.partial.npz"
    try:
        with naming_a_full_disk(partial, snapshot.nbytes):
            write_npz(partial, snapshot)
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    return partial


def commit_backup(partial: Path, snapshot: Snapshot) -> Path:
    """Renames a staged npz into place and writes its manifest last (module doc), keeps the KEPT_BACKUPS newest;
    returns the backup's file."""
    name = f"step-{snapshot.global_step:09d}"
    path = partial.with_name(f"{name}.npz")
    with naming_a_full_disk(path.with_name(f"{name}.json"), 4096):  # the manifest, beside the file it vouches for
        os.replace(partial, path)
        BackupManifest(weights=path.name, epoch=snapshot.position.epoch, step=snapshot.position.step,
                       global_step=snapshot.global_step, bytes=path.stat().st_size, sha256=file_sha256(path),
                       metrics=snapshot.metrics, saved=now()).write(path.with_name(f"{name}.json"))
    _prune(path.parent)
    return path


def write_backup(snapshot: Snapshot, folder: Path) -> Path:
    """Writes the snapshot as a backup in folder (module doc), keeps the KEPT_BACKUPS newest; returns its file."""
    return commit_backup(stage_backup(snapshot, folder), snapshot)


def _prune(folder: Path) -> None:
    """Deletes all but the KEPT_BACKUPS newest backups, manifest first (a backup without one is gone), and any
    partial file a killed process left (the one write in flight has just committed)."""
    for manifest in sorted(folder.glob("step-*.json"), reverse=True)[KEPT_BACKUPS:]:
        manifest.unlink(missing_ok=True)
        for file in folder.glob(f"{manifest.stem}.*"):
            file.unlink(missing_ok=True)
    for partial in folder.glob(".step-*.partial.*"):
        partial.unlink(missing_ok=True)


def restore(model: keras.Model, backup: SavedBackup) -> None:
    """Loads a backup into a built, compiled model: its weights, random streams' states and optimizer.

    DataError when the backup holds other variables than the model (its config was changed since).
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    if backup.weights.suffix == ".h5":  # a backup of an earlier version, written by model.save_weights
        model.load_weights(backup.weights)
        return
    with np.load(backup.weights) as arrays:
        for group, variables in state_variables(model).items():
            held = [arrays[name] for name in sorted(arrays.files) if name.startswith(f"{group}/")]
            if [a.shape for a in held] != [tuple(v.shape) for v in variables]:
                raise DataError(f"backup {backup.weights} holds another network ({len(held)} {group} variables for "
                                f"the model's {len(variables)}, or other shapes): the run's config was changed since "
                                f"it was written; train under another RUN=name, or move {backup.weights.parent} aside")
            for variable, value in zip(variables, held, strict=True):
                variable.assign(value)


class BestModel:
    """The best model so far: the epoch with the lowest validation top-1 error among those whose training and
    validation losses are finite, kept as best.keras (the model compiled as the run's, without the optimizer's
    state: the backups hold that) and best.json. Survives resumes: the best error so far is read from best.json
    when training starts.

    `choose` decides on the training thread at an epoch's end; `write` saves that epoch's snapshot (its host copy
    of the model) in the background. Keras's ModelCheckpoint(save_best_only=True) keeps its best in memory (a
    resumed run forgets it), saves a non-finite epoch's model, serialises on the training step, and has no
    multi-worker handling: hence this one.
    """

    def __init__(self, run: RunDir):
        self.path, self.record = run / rundir.BEST_MODEL, run / rundir.BEST_RECORD
        self.best = BestEpoch.read(self.record).val_top1_error if self.record.exists() else None

    def choose(self, epoch: int, logs: dict | None) -> BestEpoch | None:
        """The record of this epoch when it is the best so far (epoch: 0-based, as Keras counts), else None."""
        val = validation_errors(logs)
        if val is None or not all(math.isfinite(logs[key]) for key in ("loss", "val_loss")):
            return None  # a diverged network never becomes the best model, however its outputs rank
        if self.best is not None and val.top1_error >= self.best:
            return None
        self.best = val.top1_error
        return BestEpoch(epoch + 1, val.top1_error, val.top5_error)

    def write(self, snapshot: Snapshot, chosen: BestEpoch) -> None:
        """Saves the snapshot's weights as best.keras (under a temporary name, then renamed: a crash leaves the
        previous best), then best.json."""
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        try:
            with naming_a_full_disk(self.path, snapshot.nbytes):
                save_keras_file(snapshot.host.model, partial)
                os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)
        chosen.write(self.record)


class Backup(keras.callbacks.Callback):
    """Backs up the run (module doc): at the end of every epoch (with the best model, when the epoch is the
    best so far), every every_seconds and every every_steps; `save` does it at any step (a stop on a signal).

    `resumed`: the backup the driver restored; when it stands mid-epoch, its metric sums are added to the
    resumed epoch's after its first step (fit resets the metrics when the epoch begins, and builds some of them
    only in that step). In a multi-worker job (`agreement`), every worker backs up at the steps the workers
    agreed on: the chief asks for the timed ones, any worker for a stop (`stop`: the request of this step, when
    it asks every worker to stop). Only the chief writes. An epoch's last step is backed up by its end, after
    the validation pass (a backup there would resume into an epoch with no step left). The backups are deleted
    by the driver's finish, once the run is complete.
    """

    def __init__(self, run: RunDir, steps_per_epoch: int, epochs: int, every_steps: int = 0,
                 every_seconds: float = 0, task: Task = SINGLE_WORKER, resumed: SavedBackup | None = None,
                 agreement: JobAgreement | None = None):
        super().__init__()
        self.dir, self.steps_per_epoch, self.last_step = run / rundir.BACKUP, steps_per_epoch, epochs * steps_per_epoch
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.task, self.resumed, self.agreement = task, resumed, agreement
        self.best = BestModel(run)
        self.writer = BackgroundWriter()
        self.epoch = 0
        self.last_save = time.monotonic()
        self.stop: Request | None = None
        # What else is written from each epoch's end snapshot, behind the step (the reporter's weight pictures).
        self.epoch_end_writers: list[Callable[[Snapshot], None]] = []
        self.host: HostCopy | None = None  # the copy of the model the snapshots go into, made when training begins
        self.saved: Path | None = None  # the newest backup file (the chief's), once its write has committed

    def _global_step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_begin(self, logs=None):
        self.last_save = time.monotonic()
        if self.task.is_chief and self.host is None:  # now, before the first step: building it takes memory
            self.host = HostCopy(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.resumed and self.resumed.position.step and self.epoch == self.resumed.position.epoch:
            for variable in self.model.metrics_variables:  # the sums of the steps trained before the stop
                variable.assign(variable + self.resumed.metrics[variable.path])
            self.resumed = None
        step = self._global_step()
        agreed = self.agreement.due(step) if self.agreement else None
        self.stop = agreed if agreed and agreed.signal else None
        if step - self.epoch * self.steps_per_epoch == self.steps_per_epoch:
            return  # the epoch's last step: its end is backed up next, after the validation pass
        timed = self.every_seconds and time.monotonic() - self.last_save >= self.every_seconds
        if agreed or (self.every_steps and step % self.every_steps == 0) or (timed and not self.agreement):
            self.save()
        elif timed and self.task.is_chief and step < self.last_step:  # every worker backs up after the next step
            self.agreement.request(step)
            self.last_save = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        chosen = self.best.choose(epoch, logs) if self.task.is_chief else None
        self.save(Position(epoch + 1, 0), chosen, self.epoch_end_writers)

    def save(self, position: Position | None = None, best: BestEpoch | None = None,
             also: Sequence[Callable[[Snapshot], None]] = ()) -> None:
        """Backs up the model as it is now (position: where it stands; by default the current step of this
        epoch), with best: writes it as the best model first; then whatever `also` writes from the same
        snapshot. The step waits for the write before it, if one is still in flight, and for the snapshot; the
        write runs behind."""
        step = self._global_step()
        position = position or Position(self.epoch, step - self.epoch * self.steps_per_epoch)
        self.last_save = time.monotonic()
        if not self.task.is_chief:  # only its share of the metric sums: they are summed as they are read
            for variable in self.model.metrics_variables:
                keras.ops.convert_to_numpy(variable)
            return
        self.writer.wait()  # one snapshot at a time: the host copy is free once the write before has committed
        snapshot = take_snapshot(self.model, self.host, position, step)

        def write():
            staged = stage_backup(snapshot, self.dir)
            snapshot.release_buffers()  # the momentum is in the file: only the weights are held from here
            if best:  # before the backup that resumes after it commits: a resumed run never misses a best epoch
                self.best.write(snapshot, best)
            for write_more in also:
                write_more(snapshot)
            self.saved = commit_backup(staged, snapshot)
            return_freed_memory()

        self.writer.submit(write)
