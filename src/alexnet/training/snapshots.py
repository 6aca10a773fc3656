"""What a run's backups and its best model are written from: a snapshot of the training state in host memory,
taken on the training step, and a writer that writes it in a thread of its own.

This is orbax's asynchronous checkpointing, in small: the step waits only for the copy of the state to host
memory (take_snapshot: the weights copied into a host copy of the model, the momentum and the random streams'
states held as they are by copy-on-write, host_view); serialisation, flush, checksum and the atomic rename run
behind it in the BackgroundWriter while training goes on. One write runs at a time: a new snapshot is taken
once the write in flight has committed, so no backup is ever skipped and one snapshot is in memory at most.
The best model is saved from the host copy as it is (a .keras file needs a model). The process does not end
before the write in flight has committed (the writer's thread is not a daemon, and fit waits for it); a kill
during a write leaves a partial file under a temporary name, which no reader takes for a backup, and the
previous backup intact.

A backup file is numpy's .npz: the model's weights, its other variables (the random streams' states) and the
optimizer's variables, each group in the model's own order, under "<group>/<index>", written one array at a
time from the snapshot's buffers (no copy of the whole state is made for it).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

GROUPS = ("weights", "states", "optimizer")  # the variable groups of a backup file, in this order


@dataclasses.dataclass(frozen=True)
class Position:
    """Where training stands: the epoch to train (0-based) and how many of its steps are already trained."""

    epoch: int = 0
    step: int = 0


START = Position()  # a run that has not trained yet


def state_variables(model: keras.Model) -> dict[str, list]:
    """The variables a backup holds, by group (GROUPS), each in the model's order: the weights (what a .keras
    file holds), the model's other variables (the random streams' states) and the optimizer's."""
    weights = {id(w) for w in model.weights}
    return {"weights": list(model.weights), "states": [v for v in model.variables if id(v) not in weights],
            "optimizer": list(model.optimizer.variables) if model.optimizer else []}


class HostCopy:
    """A copy of the model built once from its config on the host CPU, outside any distribution strategy (built
    in a thread of its own: a strategy's scope belongs to the training thread), compiled as the model is but
    with no optimizer state. A snapshot's weights are assigned into it; the best model is saved from it."""

    def __init__(self, model: keras.Model):
        config, built = keras.saving.serialize_keras_object(model), []

        def build():
            with keras.device("cpu:0"):
                built.append(keras.saving.deserialize_keras_object(config))

        thread = threading.Thread(target=build, name="host-copy")
        thread.start()
        thread.join()
        self.model = built[0]

    def take(self, model: keras.Model) -> None:
        """Assigns the model's weights to the copy (a copy in memory; the copy must not be being written)."""
        for copy, weight in zip(self.model.weights, model.weights, strict=True):
            copy.assign(weight)


def host_view(variable) -> np.ndarray:
    """The variable's value as a read-only NumPy array in host memory: on a CPU a view of its buffer, no copy.

    TensorFlow copies a variable's buffer before an update when anything else holds it (copy-on-write), so the
    view keeps the value it had when taken while training goes on; on a GPU the value is copied to the host.
    """
    tensor = tf.convert_to_tensor(variable)
    try:
        return np.asarray(memoryview(tensor))
    except (TypeError, ValueError):  # a dtype the buffer protocol has no format for (bfloat16): a copy
        return tensor.numpy()


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The training state at one step, in host memory: where it stands, the weights (in the host copy), the
    random streams' states and the optimizer's variables (host_view: the buffers as they are, kept by
    copy-on-write while training goes on) and the epoch metrics' running sums (metric variable path: value)."""

    position: Position
    global_step: int
    host: HostCopy
    arrays: dict[str, list[np.ndarray]]  # "states" and "optimizer"
    metrics: dict[str, float]

    @property
    def nbytes(self) -> int:
        """The bytes of its variables: about what its backup file takes."""
        return sum(array.nbytes for _, array in self.named_arrays())

    def release_buffers(self) -> None:
        """Lets go of the momentum and random streams' buffers (once they are in the backup file): only the host
        copy's weights remain, for the best model and the pictures."""
        for arrays in self.arrays.values():
            arrays.clear()

    def named_arrays(self):
        """(name in a backup file, array) of each variable, in GROUPS' order."""
        for i, weight in enumerate(self.host.model.weights):
            yield array_name("weights", i), host_view(weight)
        for group in GROUPS[1:]:
            for i, array in enumerate(self.arrays[group]):
                yield array_name(group, i), array


def array_name(group: str, index: int) -> str:
    """The name of a group's index-th variable in a backup file."""
    return f"{group}/{index:05d}"


def take_snapshot(model: keras.Model, host: HostCopy, position: Position, global_step: int) -> Snapshot:
    """Copies the model's weights into host (its copy on the host) and takes host views of its other variables
    and its optimizer's, and its metric sums: what the training step waits for. In a multi-worker job every
    worker takes it at the same step: the metric sums are summed across workers as they are read."""
    host.take(model)
    variables = state_variables(model)
    arrays = {group: [host_view(v) for v in variables[group]] for group in GROUPS[1:]}
    metrics = {v.path: float(keras.ops.convert_to_numpy(v)) for v in model.metrics_variables}
    return Snapshot(position, global_step, host, arrays, metrics)


def return_freed_memory() -> None:
    """Hands the memory a write freed back to the operating system (glibc keeps a thread's freed blocks for
    reuse, so each write would raise the process's resident memory a little more); nothing elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def write_npz(path: Path, snapshot: Snapshot) -> None:
    """Writes the snapshot to path as numpy's .npz (what np.savez writes, an array at a time) and flushes it to
    the disk."""
    with open(path, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in snapshot.named_arrays():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())  # on the disk before a rename makes it the backup


def save_keras_file(model: keras.Model, path: Path) -> None:
    """Saves model as a .keras file at path: Keras's unzipped layout written into a temporary folder beside it
    (the weights straight to the disk, a variable at a time), then stored in the zip a .keras file is. Keras's
    own .keras writer holds the whole weights file in memory first."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}-") as folder:
        model.save(Path(folder) / "model", zipped=False)
        files = sorted(p for p in (Path(folder) / "model").rglob("*") if p.is_file())
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for file in files:
                archive.write(file, file.relative_to(Path(folder) / "model").as_posix())


class BackgroundWriter:
    """Runs writes in a thread of their own, one at a time (module doc).

    `submit` waits for the write in flight before starting the next (the seconds the training thread waited are
    summed in `waited_seconds`); an error of a write (a full disk) is raised in the training thread by the next
    `submit` or `wait`.
    """

    def __init__(self, name: str = "backup-writer"):
        self.name = name
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.waited_seconds = 0.0

    def submit(self, write: Callable[[], None]) -> None:
        """Starts write() in the background once the write in flight has committed."""
        self.wait()
        self.thread = threading.Thread(target=self._run, args=(write,), name=self.name)  # not a daemon: see wait
        self.thread.start()

    def _run(self, write: Callable[[], None]) -> None:
        try:
            write()
        except BaseException as e:  # handed to the training thread
            self.error = e

    def wait(self) -> None:
        """Returns once no write is in flight; raises the error of the write that ended, if it failed."""
        if self.thread is not None:
            started = time.perf_counter()
            self.thread.join()
            self.waited_seconds += time.perf_counter() - started
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error
