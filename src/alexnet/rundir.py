"""The run directory, logs/RUN/: every file and folder name of a run, and how they are read and written.

Every run file is written atomically (alexnet/files.py, or renamed into place like it), so a crash never
leaves half a file. Commands that read a finished run back (eval, export, predict) use the run's own resolved
config and class names from here, never the command line's.

Example:
    run = RunDir("logs/demo")
    config = run.load_config()           # the resolved config the run trained with
    names = run.class_names()            # label order of the run's classifier
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from alexnet.config import Config, config_yaml, load_config
from alexnet.errors import DataError, RunFinishedError
from alexnet.files import read_json, write_text

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
LR_FIND = "lr_find"
LR_FIND_PLOT = "lr_find.png"
LR_FIND_RECORD = "lr_find.json"

# What each entry holds, in the order a run writes them. README's "What a run writes" table is this table
# (a test compares the two).
CONTENTS = {
    CONFIG: "the resolved configuration",
    CLASSES: "class names, in label order",
    RUN_INFO: ("the command, when it started (and how often it resumed), the machine, the package versions and "
               "the data set's size"),
    f"{TRAIN_EVENTS}/": ("TensorBoard, training: loss, top-1/top-5 error, learning rate, images/s every "
                         "`tensorboard.every_steps` steps, and per epoch with the epoch time; per-layer "
                         "activation and gradient statistics (`layers/*`) every `tensorboard.layer_stats_steps`"),
    f"{VALIDATION_EVENTS}/": "TensorBoard, validation: loss, top-1/top-5 error per epoch",
    EVENT_FILES: ("TensorBoard, the rest: augmented inputs as the network sees them, conv1 filters (the paper's "
                  "Figure 3), weight histograms, hparams with the final metrics, the config as text"),
    HISTORY: ("one row per epoch: step, loss, top-1/top-5 error on training and validation, learning rate, "
              "images/s, seconds, the process's peak memory in GB (also in TensorBoard, `epoch_peak_memory_gb`)"),
    BEST_MODEL: ("the model with the lowest validation top-1 error among the epochs whose losses are finite (chosen "
                 "on the validation split it is reported on: an optimistic figure for new images)"),
    BEST_RECORD: "the best epoch and its validation errors",
    LR_SCHEDULE: "the learning-rate schedule's state after every epoch (a resumed run continues it)",
    f"{BACKUP}/": ("weights, optimizer and epoch, saved every epoch and every `train.backup_every_steps` steps; "
                   "removed when the run completes"),
    f"{PROFILE}/": 'a profiler trace, with `tensorboard.profile_steps=5-10`',
    f"{EXPORT}/": "the SavedModel",
    FINAL_METRICS: ("written last (the run is complete): the best epoch's errors, times, peak memory, and with "
                    "`eval.train_error_images` the final weights' errors on that many training images in inference "
                    "mode and the overfitting gap"),
    EVAL_RECORD: ("`make eval`: centre-crop and 10-crop top-1/top-5 error, loss, images and seconds, their time "
                  "ratio, and the per-class top-1 error, worst first"),
    f"{EVAL_EVENTS}/": ("`make eval`: TensorBoard, the errors at the best model's step, the Table 2 layout as text, "
                        "the confusion matrix, Figure 4 (top-5 predictions; nearest training images in fc7) and "
                        "the fc7 projector"),
    f"{LR_FIND}/": "`make lr-find`: TensorBoard, loss and learning rate of every step of the range test, and its plot",
    LR_FIND_PLOT: "`make lr-find`: loss against learning rate, the suggested rate marked",
    LR_FIND_RECORD: "`make lr-find`: the suggested rate and the whole curve",
}


def contents_table() -> str:
    """CONTENTS as the Markdown table README's "What a run writes" shows."""
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
        """Whether the run has completed (its final metrics are written last)."""
        return (self.path / FINAL_METRICS).exists()

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


def unfinished_runs(study: Path, plan: list[tuple[str, int]], label: str) -> Iterator[tuple[RunDir, str, int]]:
    """(run, name, seed) for each (name, seed) of a study's plan whose run study/<name>-seed<seed> has not
    finished, printing one progress line per planned run (kept or to train) under label."""
    start = time.perf_counter()
    for done, (name, seed) in enumerate(plan, start=1):
        run = RunDir(study / f"{name}-seed{seed}")
        if run.finished:
            print(f"{label}: {run.name} finished earlier, kept ({done}/{len(plan)})", flush=True)
            continue
        print(f"{label}: training {run.name} ({done}/{len(plan)}, {time.perf_counter() - start:.0f} s so far)",
              flush=True)
        yield run, name, seed
