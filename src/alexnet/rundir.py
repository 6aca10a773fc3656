"""The run directory, logs/RUN/: every file and folder name of a run, and how they are read and written.

Every run file is written atomically (alexnet/files.py, or renamed into place like it), so a crash never
leaves half a file. Commands that read a finished run back (eval, export, predict) use the run's own resolved
config and class names from here, never the command line's.

Its JSON files are typed records (alexnet/records.py); RunDir reads each through its record class.

Example:
    run = RunDir("logs/demo")
    config = run.load_config()           # the resolved config the run trained with
    names = run.class_names()            # label order of the run's classifier
    best = run.final_metrics().best      # the best epoch and its validation errors
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
from pathlib import Path

from alexnet import tags
from alexnet.config import Config, config_yaml, load_config
from alexnet.errors import DataError, RunBusyError, RunFinishedError
from alexnet.files import read_json, write_text
from alexnet.records import Evaluation, FinalMetrics, HistoryRow, ImportedNetwork, RunInfo, read_history

CONFIG = "config.yaml"
CLASSES = "classes.json"
RUN_INFO = "run.json"
TRAIN_EVENTS = "train"
VALIDATION_EVENTS = "validation"
EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's file pattern, in the run directory and in the two above
HISTORY = "history.csv"
BEST_MODEL = "best.keras"
BEST_RECORD = "best.json"
LR_SCHEDULE = "lr_schedule.json"
BACKUP = "backup"
PROFILE = "profile"
EXPORT = "export"
FINAL_METRICS = "final_metrics.json"
EVAL_RECORD = "eval.json"
EVAL_EVENTS = "eval"
IMPORTED = "imported.json"
FIRST_RUN = "first_run.json"
LR_FIND = "lr_find"
LR_FIND_PLOT = "lr_find.png"
LR_FIND_RECORD = "lr_find.json"
LOCK = "lock.json"

# What each entry holds, in the order a run writes them. docs/runs.md's "What a run writes" table is this table
# (a test compares the two).
CONTENTS = {
    LOCK: ("while a process trains the run: its host, process id and start time, refreshed every 10 s; another "
           "`train` into the run stops with exit status 5 (RunLock)"),
    CONFIG: "the resolved configuration",
    CLASSES: "class names, in label order",
    RUN_INFO: ("the command, when it started (and how often it resumed), the machine, the package versions and "
               "the data set's size"),
    f"{TRAIN_EVENTS}/": ("TensorBoard, training: loss, top-1/top-5 error (in training mode, as each tag's "
                         "description says), learning rate, images/s every "
                         "`tensorboard.every_steps` steps, and per epoch with the epoch time; per-layer "
                         f"activation and gradient statistics (`{tags.LAYERS}/*`) every "
                         "`tensorboard.layer_stats_steps`"),
    f"{VALIDATION_EVENTS}/": "TensorBoard, validation: loss, top-1/top-5 error per epoch",
    EVENT_FILES: ("TensorBoard, the rest: augmented inputs as the network sees them, conv1 filters (the paper's "
                  "Figure 3), weight histograms, the ten hparams that tell runs apart with the final errors, the "
                  "config as text"),
    HISTORY: ("one row per epoch: step, loss, top-1/top-5 error on training and validation, learning rate, "
              f"images/s, seconds, the process's peak memory in GB (also in TensorBoard, "
              f"`{tags.epoch(tags.PEAK_MEMORY_GB)}`)"),
    BEST_MODEL: ("the model with the lowest validation top-1 error among the epochs whose losses are finite (chosen "
                 "on the validation split it is reported on: an optimistic figure for new images), compiled as the "
                 "run's, without the optimizer's state (the backups hold that)"),
    BEST_RECORD: "the best epoch and its validation errors",
    LR_SCHEDULE: "the paper's plateau rule's state after every epoch (schedule paper; a resumed run continues it)",
    f"{BACKUP}/": ("the two newest backups: weights, random streams' states and optimizer (`step-N.npz`) and a "
                   "manifest (`step-N.json`: the epoch, the step in it, the epoch's metric sums, the file's size and "
                   "SHA-256), saved every epoch, every `train.backup_every_seconds` (300 s), every "
                   "`train.backup_every_steps` when set, and on SIGTERM/SIGINT; removed when the run completes"),
    f"{PROFILE}/": 'a profiler trace, with `tensorboard.profile_steps=5-10`',
    f"{EXPORT}/": "the SavedModel",
    FINAL_METRICS: ("written last (the run is complete): the best epoch's errors, times, peak memory, and with "
                    "`eval.train_error_images` the final weights' errors on that many training images in inference "
                    "mode and the overfitting gap"),
    IMPORTED: ("`make import`: where the imported network's weights came from, its layout, size and published "
               "errors; the run is complete without a final_metrics.json"),
    FIRST_RUN: ("`make first-run`: how long the run took from a fresh clone to the export, the install's share, and "
                "the command, commit, machine and versions"),
    EVAL_RECORD: ("`make eval`: centre-crop and 10-crop top-1/top-5 error, loss, images and seconds, their time "
                  "ratio, the per-class top-1 error, worst first, and how much LRN's gain varies across positions"),
    f"{EVAL_EVENTS}/": ("`make eval`: TensorBoard, the errors at the best model's step, the Table 2 layout as text, "
                        "the confusion matrix, Figure 4 (top-5 predictions; nearest training images in fc7) and "
                        "the fc7 projector"),
    f"{LR_FIND}/": "`make lr-find`: TensorBoard, loss and learning rate of every step of the range test, and its plot",
    LR_FIND_PLOT: "`make lr-find`: loss against learning rate, the suggested rate marked",
    LR_FIND_RECORD: "`make lr-find`: the suggested rate and the whole curve",
}


def contents_table() -> str:
    """CONTENTS as the Markdown table docs/runs.md's "What a run writes" shows."""
    rows = [f"| `{entry}` | {what} |" for entry, what in CONTENTS.items()]
    return "\n".join(["| path | contents |", "|---|---|", *rows])


class RunDir:
    """A run directory: the paths of its entries and the checks commands make before they use it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.name

    def __truediv__(self, entry: str) -> Path:
        return self.path / entry

    @property
    def finished(self) -> bool:
        """Whether the run has completed: its final metrics are written last (an imported network's record)."""
        return (self.path / FINAL_METRICS).exists() or self.imported

    @property
    def imported(self) -> bool:
        """Whether the run is a network trained elsewhere (`make import`)."""
        return (self.path / IMPORTED).exists()

    def start(self, config: Config, write: bool = True) -> None:
        """Creates the directory for training and (write: the chief of a multi-worker job) the resolved config.

        Raises RunFinishedError for a finished run: a finished run is never overwritten.
        """
        if self.finished:
            raise RunFinishedError(
                f"{self.path} already holds a finished run; choose another RUN=name or remove the directory")
        self.path.mkdir(parents=True, exist_ok=True)
        if write:
            write_text(self.path / CONFIG, config_yaml(config))

    def require(self, entry: str, hint: str) -> Path:
        """The path of entry, or DataError naming it and what to run (hint) when it does not exist."""
        path = self.path / entry
        if not self.path.is_dir():
            raise DataError(f"run {self.path} does not exist; train it first with `make train RUN={self.name}`")
        if not path.exists():
            raise DataError(f"{path} does not exist; {hint}")
        return path

    def load_config(self, overrides: list[str] = ()) -> Config:
        """The run's resolved config, with command-line overrides (such as another data.dir) on top."""
        return load_config(self.require(CONFIG, f"train first with `make train RUN={self.name}`"), overrides,
                           check_files=False)

    def info(self) -> RunInfo:
        """run.json: how the run was started, on what machine, with which data."""
        return RunInfo.read(self.require(RUN_INFO, f"train first with `make train RUN={self.name}`"))

    def final_metrics(self) -> FinalMetrics:
        """final_metrics.json of the finished run."""
        return FinalMetrics.read(self.require(FINAL_METRICS, f"the run has not finished: `make train RUN={self.name}` "
                                                            f"resumes it"))

    def history(self) -> list[HistoryRow]:
        """history.csv's rows, one per epoch."""
        return read_history(self.require(HISTORY, f"train first with `make train RUN={self.name}`"))

    def evaluation(self) -> Evaluation:
        """eval.json of the run's last `make eval`."""
        return Evaluation.read(self.require(EVAL_RECORD, f"evaluate it first with `make eval RUN={self.name}`"))

    def imported_network(self) -> ImportedNetwork:
        """imported.json of a network trained elsewhere."""
        return ImportedNetwork.read(self.require(IMPORTED, f"import it with `make import RUN={self.name}`"))

    def class_names(self) -> list[str]:
        """The class names of the run's classifier, in label order."""
        return read_json(self.require(CLASSES, f"train first with `make train RUN={self.name}`"))

    def check_classes(self, data_class_names: list[str], data_description: str) -> None:
        """DataError unless data_class_names are the run's class names in the same order."""
        own = self.class_names()
        if list(data_class_names) != own:
            differ = sorted(set(own) ^ set(data_class_names))
            detail = f"names only one side has: {differ[:10]}" if differ else "the same names in another order"
            raise DataError(
                f"{data_description} has {len(data_class_names)} classes that do not match the "
                f"{len(own)} in {self.path / CLASSES} ({detail}); evaluate on data with the run's classes")


class RunLock:
    """One writer per run directory: the training process holds RUN/lock.json while it trains.

    The file names the host, the process id, the process's start time and when it took the lock, and its
    modification time is refreshed every HEARTBEAT_SECONDS by a thread. Another process meets a held lock
    with RunBusyError naming them. A lock is left behind only by a process that died without cleaning up;
    it is taken over, with a line saying so, when its holder is known dead: on this host, no process with
    that id and start time runs; on another host (a shared file system), the file has not been refreshed
    for STALE_SECONDS. Taking over renames the old file away first, so of two processes that both find it
    stale one takes it.

    Example:
        with RunLock(run.path):
            train()
    """

    HEARTBEAT_SECONDS = 10
    STALE_SECONDS = 60

    def __init__(self, run_path: str | Path):
        self.path = Path(run_path) / LOCK
        self.run = Path(run_path)
        self.holder = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
                       "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        self._stop = threading.Event()

    def __enter__(self) -> RunLock:
        self.run.mkdir(parents=True, exist_ok=True)
        while not self._create():
            other = self._read()
            if other is not None and self._alive(other):
                raise RunBusyError(
                    f"run {self.run} is being trained by process {other.get('pid')} on host {other.get('host')} "
                    f"(since {other.get('since')}): wait for it to finish or stop it, or train under another "
                    f"RUN=name; {self.path} is the lock")
            self._take_over(other)
        threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._read() == self.holder:
            self.path.unlink(missing_ok=True)

    def _create(self) -> bool:
        """Writes the lock file if there is none (O_EXCL: one creator wins); whether this process now holds it."""
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as f:
            json.dump(self.holder, f)
        return True

    def _read(self) -> dict | None:
        """The holder the lock file names; None when it is gone or unreadable (half written by a crash)."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _alive(self, other: dict) -> bool:
        """Whether the lock's holder may still be running (see the class doc)."""
        if other.get("host") == self.holder["host"]:
            return _process_start(other.get("pid")) == other.get("process_start") is not None
        try:
            return time.time() - self.path.stat().st_mtime < self.STALE_SECONDS
        except FileNotFoundError:
            return False

    def _take_over(self, other: dict | None) -> None:
        """Moves a dead holder's lock aside (one of two racing processes succeeds; the other tries again)."""
        aside = self.path.with_name(f".{LOCK}.{self.holder['host']}.{os.getpid()}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        aside.unlink(missing_ok=True)
        who = (f"process {other.get('pid')} on host {other.get('host')}, which is no longer running"
               if other else "a process that died while writing it")
        print(f"run {self.run}: took over the lock left by {who}", flush=True)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.HEARTBEAT_SECONDS):
            with contextlib.suppress(OSError):
                os.utime(self.path)


def _process_start(pid) -> str | None:
    """The start time of process pid (field 22 of Linux's /proc/PID/stat, in clock ticks since boot), so that a
    reused process id is not taken for the lock's holder; "running" where /proc is absent; None when no such
    process runs."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():  # no /proc (macOS): whether the id is in use at all
            try:
                os.kill(int(pid), 0)
                return "running"
            except ProcessLookupError:
                return None
            except PermissionError:
                return "running"
        return None
    except (OSError, ValueError, TypeError, IndexError):
        return None
