"""What a run's backups and its best model are written from: a snapshot of the training state in host memory,
taken on the training step, and a writer that writes it in a thread of its own.

This is orbax's asynchronous checkpointing, in small: the step waits only for the copy of the variables to host
memory (take_snapshot: ~0.1 s for the paper's network, weights and momentum, on a CPU); serialisation, flush,
checksum and the atomic rename run behind it in the BackgroundWriter while training goes on. One write runs at a
time: a new snapshot's write waits for the one in flight to commit, so no backup is ever skipped, and besides
the model at most one snapshot is in memory. The process does not end before the write in flight has committed
(the writer's thread is not a daemon, and fit waits for it); a kill during a write leaves a partial file under
a temporary name, which no reader takes for a backup, and the previous backup intact.

A backup file is numpy's .npz: the model's weights, its other variables (the random streams' states) and the
optimizer's variables, each group in the model's own order, under "<group>/<index>".
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

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


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The training state at one step, copied to host memory: where it stands, the variables by group (GROUPS,
    NumPy copies) and the epoch metrics' running sums (metric variable path: value)."""

    position: Position
    global_step: int
    arrays: dict[str, list[np.ndarray]]
    metrics: dict[str, float]

    @property
    def nbytes(self) -> int:
        """The bytes of its arrays: about what its backup file takes."""
        return sum(a.nbytes for arrays in self.arrays.values() for a in arrays)

    def named_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under the names a backup file gives them ("<group>/<index>")."""
        return {array_name(group, i): a for group, arrays in self.arrays.items() for i, a in enumerate(arrays)}


def array_name(group: str, index: int) -> str:
    """The name of a group's index-th variable in a backup file."""
    return f"{group}/{index:05d}"


def take_snapshot(model: keras.Model, position: Position, global_step: int) -> Snapshot:
    """Copies the model's and its optimizer's variables and its metric sums to host memory (what the training
    step waits for). In a multi-worker job every worker takes it at the same step: the metric sums are summed
    across workers as they are read."""
    arrays = {group: [keras.ops.convert_to_numpy(v) for v in variables]  # NumPy copies
              for group, variables in state_variables(model).items()}
    metrics = {v.path: float(keras.ops.convert_to_numpy(v)) for v in model.metrics_variables}
    return Snapshot(position, global_step, arrays, metrics)


def write_npz(path: Path, snapshot: Snapshot) -> None:
    """Writes the snapshot's arrays to path as .npz and flushes it to the disk."""
    with open(path, "wb") as f:
        np.savez(f, **snapshot.named_arrays())
        f.flush()
        os.fsync(f.fileno())  # on the disk before a rename makes it the backup


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
