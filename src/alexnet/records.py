"""Typed records: every file one command writes and another reads, each with one JSON reader and one writer.

A record is a frozen dataclass. On disk it is JSON whose first two keys name its kind and schema version:

    {"kind": "final_metrics", "version": 1, "best": {"epoch": 14, ...}, ...}

`Record.read(path)` checks the kind, the version and every field's type, and builds the dataclass; a file of
another kind or version, or whose fields differ, is a RecordError (exit status 3) naming the file and the
command that writes it anew. Readers use the attributes; no other module reads these files' keys
(tests/test_records.py holds that). The results the pages quote (docs/results/<name>/*.json,
alexnet/studies/pages.py) are these same records, each carrying its Provenance: the command, the commit, the
machine, the versions and the date it was measured.

history.csv is a record too: one HistoryRow per epoch, written by `append_history`, read by `read_history`.

Example:
    final = FinalMetrics.read("logs/demo/final_metrics.json")
    info = RunInfo.read("logs/demo/run.json")
    print(final.best.val_top1_error, info.provenance.machine.processor)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from alexnet.errors import DataError
from alexnet.files import read_json, write_json

# The CPU flags that decide the training precision (bfloat16 units) and say what a figure's machine could do.
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")
# The packages whose versions a record names (those installed; torch only where `make bench PEERS=torch` ran).
PACKAGES = ("tensorflow", "keras", "tensorflow-datasets", "alexnet-keras", "torch", "jax")
PEER_RATIO = "peer_"  # the key prefix of make bench's ratios against other frameworks


class RecordError(DataError):
    """A record file of another kind or schema version, or whose fields do not match its schema."""


# ----- the record base: one reader, one writer -----


class Record:
    """The base of every JSON record: KIND and VERSION head the file; WRITTEN_BY names the command that writes it."""

    KIND: ClassVar[str]
    VERSION: ClassVar[int] = 1
    WRITTEN_BY: ClassVar[str]
    _KINDS: ClassVar[dict[str, type[Record]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "KIND" in cls.__dict__:
            Record._KINDS[cls.KIND] = cls

    def to_json(self) -> dict:
        """The record as the JSON object its file holds, kind and version first."""
        return {"kind": self.KIND, "version": self.VERSION, **_plain(self)}

    def write(self, path: str | Path) -> None:
        """Writes the record to path, atomically (alexnet/files.py)."""
        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path):
        """The record in path; DataError when it is missing, RecordError when it is not this kind's current schema."""
        return cls.from_json(_load(path, cls), str(path))

    @classmethod
    def from_json(cls, content, source: str):
        """The record from a parsed JSON object; source names it in errors."""
        if not isinstance(content, dict) or content.get("kind") != cls.KIND:
            found = content.get("kind") if isinstance(content, dict) else None
            named = "no kind" if found is None else repr(found)
            raise RecordError(f"{source} is not a {cls.KIND} record ({named}): "
                              f"it was written by another command or an older version of alexnet-keras; "
                              f"{cls.WRITTEN_BY} writes it anew")
        if content.get("version") != cls.VERSION:
            raise RecordError(f"{source} is a {cls.KIND} record of schema version {content.get('version')}; this "
                              f"alexnet-keras reads version {cls.VERSION}: {cls.WRITTEN_BY} writes it anew")
        body = {k: v for k, v in content.items() if k not in ("kind", "version")}
        try:
            return _build(cls, body, cls.KIND)
        except _Mismatch as e:
            raise RecordError(f"{source} does not match the {cls.KIND} schema (version {cls.VERSION}): {e}; "
                              f"{cls.WRITTEN_BY} writes it anew") from None


def read_record(path: str | Path) -> Record:
    """The record in path, whatever its kind (the kind named in the file picks the class)."""
    content = _load(path, None)
    kind = content.get("kind") if isinstance(content, dict) else None
    if kind not in Record._KINDS:
        raise RecordError(f"{path} names no known record kind ({kind!r}); the kinds are "
                          f"{', '.join(sorted(Record._KINDS))}")
    return Record._KINDS[kind].from_json(content, str(path))


def _load(path: str | Path, cls: type[Record] | None):
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist" + (f"; {cls.WRITTEN_BY} writes it" if cls else ""))
    try:
        return read_json(path)
    except ValueError as e:
        raise RecordError(f"{path} is not JSON ({e}): a record is written whole or not at all, so something else "
                          f"wrote it" + (f"; {cls.WRITTEN_BY} writes it anew" if cls else "")) from None


class _Mismatch(ValueError):
    """A value whose type is not its field's (where: the field's path in the record)."""


def _plain(value):
    """A dataclass, list, tuple or dict as JSON-ready values (tuples become lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _build(kind, value, where: str):
    """value (parsed JSON) as the type kind: dataclasses, list[T], tuple[A, B] (fixed length), dict[str, T],
    T | None, int, float, str, bool; _Mismatch naming `where` otherwise."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value, where)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _Mismatch(f"{where} should be an object, not {value!r:.40}")
        hints = typing.get_type_hints(kind)
        names = [f.name for f in dataclasses.fields(kind)]
        missing, extra = sorted(set(names) - set(value)), sorted(set(value) - set(names))
        if missing or extra:
            raise _Mismatch(f"{where} " + "; ".join(
                ([f"lacks {', '.join(missing)}"] if missing else []) + ([f"has unknown {', '.join(extra)}"] if extra
                                                                       else [])))
        return kind(**{n: _build(hints[n], value[n], f"{where}.{n}") for n in names})
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch(f"{where} should be a list")
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise _Mismatch(f"{where} should be a list of {len(args)}")
        return tuple(_build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(f"{where} should be an object")
        return {k: _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str, bool) and type(value) is kind:
        return value
    raise _Mismatch(f"{where} should be {getattr(kind, '__name__', kind)}, not {value!r:.40}")


# ----- where a figure comes from -----


@dataclass(frozen=True)
class Machine:
    """What a figure was measured on: the CPU model, its cores, memory and bfloat16/AMX flags, the GPUs."""

    processor: str
    cpus: int
    memory_gb: float
    bfloat16_flags: list[str]  # which of BFLOAT16_FLAGS the CPU has
    gpus: list[str]
    platform: str

    def line(self) -> str:
        """The machine in one line, as the pages name it."""
        flags = f", {' '.join(self.bfloat16_flags)}" if self.bfloat16_flags else ", no bfloat16 units"
        gpus = f"; GPUs: {', '.join(self.gpus)}" if self.gpus else ""
        return f"{self.processor}, {self.cpus} cores{flags}, {self.memory_gb:.0f} GB{gpus}"


@dataclass(frozen=True)
class Provenance:
    """How a figure was made: the exact command, the commit of the code (with "+changes" when the checkout had
    uncommitted changes; "" outside a checkout), the date it began (UTC), the machine and the package versions."""

    command: str
    commit: str
    date: str
    machine: Machine
    versions: dict[str, str]

    def line(self) -> str:
        """Command, machine, versions and date in one line, as the pages print them under a table."""
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return (f"`{self.command}` on {self.machine.line()}; {versions}; {self.date[:10]}"
                f"{f', commit {self.commit[:10]}' if self.commit else ''}")


def provenance(command: str | None = None, gpus: list[str] | None = None) -> Provenance:
    """The provenance of what this process measures now: command (default: this process's command line), the
    commit, today's date, this machine (gpus: the GPUs in use, default TensorFlow's if it is loaded) and the
    installed versions of PACKAGES."""
    return Provenance(command or current_command(), code_commit(), now(), this_machine(gpus), package_versions())


def now() -> str:
    """The time now, UTC, to the second (ISO 8601)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def current_command() -> str:
    """This process's command line as a user would type it (`python -m alexnet ...` or the `alexnet` command)."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if program.name == "__main__.py" and program.parent.name == "alexnet":
        return " ".join(["python -m alexnet", *sys.argv[1:]])
    if program.name == "alexnet":
        return " ".join(["alexnet", *sys.argv[1:]])
    return "called from Python: " + " ".join([program.name, *sys.argv[1:]])


def code_commit() -> str:
    """The git commit of the package's source ("+changes" when it has uncommitted ones); "" when not in a checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        if not commit:
            return ""
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+changes" if changed else "")


def this_machine(gpus: list[str] | None = None) -> Machine:
    """This machine (Linux's /proc/cpuinfo and /proc/meminfo where present). The processor is the CPU's model name
    with its family and model numbers, which tell apart CPUs a cloud names alike ("AMD EPYC")."""
    processor, flags, cpuinfo = platform.processor() or "unknown", set(), {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines():  # the first CPU's
            key, _, value = line.partition(":")
            cpuinfo[key.strip()] = value.strip()
        flags = set(cpuinfo.get("flags", "").split())
        if "model name" in cpuinfo:
            processor = f"{cpuinfo['model name']} (family {cpuinfo.get('cpu family')}, model {cpuinfo.get('model')})"
    memory = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0]) * 1024 / 1e9
    if gpus is None:
        tf = sys.modules.get("tensorflow")
        gpus = [d.name for d in tf.config.list_physical_devices("GPU")] if tf else []
    return Machine(processor, os.cpu_count() or 0, round(memory, 1), [f for f in BFLOAT16_FLAGS if f in flags],
                   list(gpus), platform.platform())


def package_versions() -> dict[str, str]:
    """Python's version and those of the installed PACKAGES."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


# ----- a training run: run.json, best.json, final_metrics.json, history.csv -----


@dataclass(frozen=True)
class DataInfo:
    """The data a run trained on: its source and where, its classes and split sizes."""

    source: str
    name: str | None
    dir: str
    classes: int
    train_images: int
    val_images: int


@dataclass(frozen=True)
class RunInfo(Record):
    """run.json: how the run was started (provenance: its first start), when it last started, how often it
    resumed, the strategy and the data."""

    KIND: ClassVar[str] = "run_info"
    WRITTEN_BY: ClassVar[str] = "`make train` (python -m alexnet train)"

    provenance: Provenance
    last_start: str
    resumes: int
    strategy: str
    replicas: int
    workers: int
    data: DataInfo


@dataclass(frozen=True)
class BestEpoch(Record):
    """best.json: the epoch whose model is kept (the lowest validation top-1 error with finite losses)."""

    KIND: ClassVar[str] = "best_epoch"
    WRITTEN_BY: ClassVar[str] = "`make train`"

    epoch: int
    val_top1_error: float
    val_top5_error: float


@dataclass(frozen=True)
class FittedErrors:
    """How well the final weights fit eval.train_error_images training images, in inference mode with the eval
    pre-processing, and the overfitting gap: the final validation top-1 error minus their top-1 error."""

    train_top1_error: float
    train_top5_error: float
    train_loss: float
    train_images: int
    final_val_top1_error: float
    overfitting_gap: float


@dataclass(frozen=True)
class FinalMetrics(Record):
    """final_metrics.json, written last (the run is complete): the best epoch, the network's size and the precision
    its convolutions trained in, where the time went (fit, its training steps and validation, and the whole
    command) and the peak memory."""

    KIND: ClassVar[str] = "final_metrics"
    WRITTEN_BY: ClassVar[str] = "`make train`"

    best: BestEpoch
    parameters: int
    precision: str
    fit_seconds: float
    train_seconds: float
    validation_seconds: float
    wall_seconds: float
    peak_memory_gb: float
    fitted: FittedErrors | None  # with eval.train_error_images

    @property
    def outside_steps_seconds(self) -> float:
        """The wall time spent neither in training steps nor in validation (start-up, backups, reports, export)."""
        return self.wall_seconds - self.train_seconds - self.validation_seconds


@dataclass(frozen=True)
class HistoryRow:
    """One epoch of history.csv. loss and the errors are Keras's, averaged over the epoch's steps in training mode
    (dropout and augmentation on); val_* are the validation pass's (None: no validation that epoch);
    learning_rate is the rate of the epoch's last step; seconds is the whole epoch, train_seconds and
    validation_seconds its two parts; peak_memory_gb is the process's peak so far."""

    epoch: int
    step: int
    loss: float
    top1_error: float
    top5_error: float
    val_loss: float | None
    val_top1_error: float | None
    val_top5_error: float | None
    learning_rate: float
    images_per_second: float
    train_seconds: float
    validation_seconds: float
    seconds: float
    peak_memory_gb: float

    def line(self, epochs: int) -> str:
        """The epoch's line on the console."""
        line = (f"epoch {self.epoch}/{epochs}: loss {self.loss:.4f}, top-1 error {self.top1_error:.2%}, "
                f"top-5 error {self.top5_error:.2%}")
        if self.val_loss is not None:
            line += (f" | val loss {self.val_loss:.4f}, top-1 error {self.val_top1_error:.2%}, "
                     f"top-5 error {self.val_top5_error:.2%}")
        return (f"{line} | lr {self.learning_rate:.3g}, {self.images_per_second:.1f} img/s, "
                f"{self.train_seconds:.0f} s + validation {self.validation_seconds:.0f} s, "
                f"peak memory {self.peak_memory_gb:.1f} GB")


HISTORY_COLUMNS = tuple(field.name for field in dataclasses.fields(HistoryRow))


def append_history(path: Path, row: HistoryRow) -> None:
    """Appends one epoch's row (HISTORY_COLUMNS; None as an empty cell) to the history CSV, header first."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(HISTORY_COLUMNS)
        writer.writerow(["" if value is None else value for value in dataclasses.astuple(row)])


def read_history(path: Path) -> list[HistoryRow]:
    """The history CSV's rows, one per epoch in order: the last row written for an epoch that a resume ran again;
    a line cut short by a crash is left out. RecordError when its columns are not HISTORY_COLUMNS."""
    rows = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != HISTORY_COLUMNS:
            raise RecordError(f"{path} has the columns {reader.fieldnames}, not this version's "
                              f"{list(HISTORY_COLUMNS)}: `make train` into a new run writes it anew")
        for cells in reader:
            if None in cells or any(cells.get(c) is None for c in HISTORY_COLUMNS):
                continue  # a partial last line
            values = {c: (int(v) if c in ("epoch", "step") else float(v)) if v else None for c, v in cells.items()}
            rows[values["epoch"]] = HistoryRow(**values)
    return [rows[e] for e in sorted(rows)]


def training_rate(history: list[HistoryRow]) -> float:
    """Training images/s over every step of the epochs (each epoch's rate weighted by its training seconds)."""
    return sum(row.images_per_second * row.train_seconds for row in history) / max(
        sum(row.train_seconds for row in history), 1e-9)


@dataclass(frozen=True)
class TrainResult(Record):
    """A finished training run as the pages quote it: how it was run, its final metrics and every epoch."""

    KIND: ClassVar[str] = "train"
    WRITTEN_BY: ClassVar[str] = "`make publish RUN=name` of a finished run"

    run: str
    info: RunInfo
    final: FinalMetrics
    history: list[HistoryRow]

    @property
    def last(self) -> HistoryRow:
        """The final epoch."""
        return self.history[-1]


@dataclass(frozen=True)
class FirstRun(Record):
    """first_run.json (`make first-run`): `make train` in a fresh clone, install included, timed: the first run a
    new user meets. The run it trained is the run directory this record sits in."""

    KIND: ClassVar[str] = "first_run"
    WRITTEN_BY: ClassVar[str] = "`make first-run`"

    provenance: Provenance
    wall_seconds: float  # the clone's `make install` and `make train`, from no virtual environment to the export
    install_seconds: float  # of which `make install`


# ----- a backup and the plateau rule's state (a resumed run reads them) -----


@dataclass(frozen=True)
class BackupManifest(Record):
    """backup/step-N.json: the weights file it vouches for (size, SHA-256), where training stood (the epoch, the
    steps of it trained, the global step) and the epoch metrics' running sums (metric variable path: value)."""

    KIND: ClassVar[str] = "backup"
    WRITTEN_BY: ClassVar[str] = "`make train` (every backup)"

    weights: str
    epoch: int
    step: int
    global_step: int
    bytes: int
    sha256: str
    metrics: dict[str, float]
    saved: str


@dataclass(frozen=True)
class PlateauState:
    """The paper's plateau rule after an epoch: the drops so far, the best validation error, epochs without a gain."""

    drops: int = 0
    best_error: float | None = None
    wait: int = 0


@dataclass(frozen=True)
class PlateauHistory(Record):
    """lr_schedule.json: the plateau rule's state after every epoch (by 0-based epoch), so a resume continues it."""

    KIND: ClassVar[str] = "plateau_rule"
    WRITTEN_BY: ClassVar[str] = "`make train` with train.schedule=paper"

    epochs: dict[str, PlateauState]


# ----- evaluation, imported networks, the learning-rate range test -----


@dataclass(frozen=True)
class Errors:
    """Top-1 and top-5 error and mean cross-entropy over a set of images (alexnet/metrics.py's scoring)."""

    top1_error: float
    top5_error: float
    loss: float
    images: int


@dataclass(frozen=True)
class PassErrors:
    """An evaluation pass: its errors, the seconds it took and the crops averaged per image (1: the centre)."""

    top1_error: float
    top5_error: float
    loss: float
    images: int
    seconds: float
    crops: int


@dataclass(frozen=True)
class ClassError:
    """One class's top-1 error (centre crop) on its validation images."""

    name: str
    top1_error: float
    images: int


@dataclass(frozen=True)
class EvalData:
    """The data an evaluation ran on."""

    source: str
    name: str | None
    dir: str
    split: str


@dataclass(frozen=True)
class Evaluation(Record):
    """eval.json (`make eval`): the centre-crop and 10-crop passes (Table 2), their time ratio, the per-class
    top-1 error (worst first) and how much LRN's gain varies across positions (by layer, over lrn_images)."""

    KIND: ClassVar[str] = "evaluation"
    WRITTEN_BY: ClassVar[str] = "`make eval RUN=name`"

    provenance: Provenance
    run: str
    data: EvalData
    centre: PassErrors
    ten_crop: PassErrors
    ten_crop_over_centre_seconds: float
    per_class: list[ClassError]
    lrn_gain_spread: dict[str, float]
    lrn_images: int


@dataclass(frozen=True)
class ImportedNetwork(Record):
    """imported.json (`make import`): where the weights came from, their layout, the network's size and its
    published centre-crop errors on ILSVRC-2012 validation; a run directory with it is complete."""

    KIND: ClassVar[str] = "imported"
    WRITTEN_BY: ClassVar[str] = "`make import WEIGHTS=... RUN=name`"

    provenance: Provenance
    weights: str
    layout: str
    parameters: int
    published_top1_error: float
    published_top5_error: float


@dataclass(frozen=True)
class LrFindResult(Record):
    """lr_find.json (`make lr-find`): the suggested rate (None: the network learnt at no rate), the rate and
    smoothed loss at the lowest point, and the whole curve."""

    KIND: ClassVar[str] = "lr_find"
    WRITTEN_BY: ClassVar[str] = "`make lr-find`"

    suggested_learning_rate: float | None
    lowest_loss_learning_rate: float
    lowest_smoothed_loss: float
    learnt: bool
    uniform_guess_loss: float
    steps: int
    batch_size: int
    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]


# ----- make bench -----


@dataclass(frozen=True)
class Throughput:
    """A measured row: images/s of each timed repetition, their median, min and max."""

    key: str
    label: str
    median: float
    min: float
    max: float
    samples: list[float]


@dataclass(frozen=True)
class Ratio:
    """Two figures of the same run divided, and the target the ratio should reach (None: no target)."""

    key: str
    label: str
    value: float
    target: float | None = None

    @property
    def met(self) -> bool | None:
        """value >= target."""
        return None if self.target is None else bool(self.value >= self.target)


@dataclass(frozen=True)
class MemoryPeak:
    """A process's peak memory in GB, and the target it should stay within (None: no target)."""

    key: str
    label: str
    gb: float
    target: float | None = None

    @property
    def met(self) -> bool | None:
        """gb <= target."""
        return None if self.target is None else bool(self.gb <= self.target)


@dataclass(frozen=True)
class BenchSetup:
    """What make bench measured: the network, batch, repetitions, data, and the precision it trains in here."""

    variant: str
    width: float
    batch: int
    steps: int
    reps: int
    pipeline_batches: int
    num_classes: int
    image_size: int
    train_files: int
    data_dir: str
    precision_setting: str
    precision: str
    precision_why: str
    peers: list[str]


@dataclass(frozen=True)
class BenchResult(Record):
    """bench.json (`make bench`): the rows (images/s), ratios and memory peaks of its table, measured in one run."""

    KIND: ClassVar[str] = "bench"
    WRITTEN_BY: ClassVar[str] = "`make bench`"

    provenance: Provenance
    setup: BenchSetup
    rows: list[Throughput]
    ratios: list[Ratio]
    memory: list[MemoryPeak]
    load_average_before: float
    load_average_after: float
    seconds: float

    def peer_ratios(self) -> list[Ratio]:
        """The ratios against other frameworks (make bench PEERS=...): their keys start with PEER_RATIO."""
        return [ratio for ratio in self.ratios if ratio.key.startswith(PEER_RATIO)]

    def row(self, key: str) -> Throughput:
        """The row of that key; KeyError naming the keys there are."""
        return _by_key(self.rows, key)

    def ratio(self, key: str) -> Ratio:
        """The ratio of that key."""
        return _by_key(self.ratios, key)

    def peak(self, key: str) -> MemoryPeak:
        """The memory peak of that key."""
        return _by_key(self.memory, key)


def _by_key(items, key: str):
    found = [item for item in items if item.key == key]
    if not found:
        raise KeyError(f"no {key!r} here; there are {', '.join(item.key for item in items)}")
    return found[0]


# ----- the studies: make claims, make compare -----


@dataclass(frozen=True)
class PairedComparison:
    """Paired statistics of per-seed differences, arm minus baseline (alexnet/studies/paired.py): their mean, its
    95% bootstrap interval, the sign-flip p, the minimum detectable effect and the verdict."""

    differences: list[float]
    mean_difference: float
    interval_95: tuple[float, float]
    p_value: float
    minimum_detectable_effect: float
    verdict: str


@dataclass(frozen=True)
class ArmRun:
    """One finished run of a claims arm: its final and best validation errors, the final weights' training error
    in inference mode and as Keras averaged it in training mode, the overfitting gap, the steps to the
    training-error threshold (a lower bound when threshold_reached is false) and the errors of every epoch."""

    val_top1_error: float
    best_val_top1_error: float
    train_top1_error: float
    train_top1_error_in_training: float
    gap: float
    steps: int
    threshold_reached: bool
    train_error_by_epoch: list[float]
    val_error_by_epoch: list[float]


@dataclass(frozen=True)
class ClaimResult:
    """One claim's measured effect: the paper's statement and figure, the metric compared (a claims.Metric value),
    which way the paper says it goes (sign), every seed's value in both arms (whether each reached the threshold,
    for steps) and the paired statistics."""

    arm: str
    section: str
    claim: str
    paper: str
    metric: str
    sign: int
    baseline: list[float]
    arm_values: list[float]
    baseline_reached: list[bool] | None
    arm_reached: list[bool] | None
    comparison: PairedComparison


@dataclass(frozen=True)
class SpeedUp:
    """Per-seed ratios tanh / ReLU of the steps to a training error, their geometric mean and its 95% interval."""

    ratios: list[float]
    geometric_mean: float
    interval_95: tuple[float, float]


@dataclass(frozen=True)
class ThresholdSteps:
    """Steps to one training error, per activation and seed, whether each reached it, and the speed-up."""

    steps: dict[str, list[int]]
    reached: dict[str, list[bool]]
    speed_up: SpeedUp


@dataclass(frozen=True)
class Figure1Summary:
    """Figure 1's experiment (alexnet/studies/figure1.py): the set-up, the rate sweep (steps to the threshold by
    rate), the rate chosen per activation and the steps at each threshold (keyed by the threshold as text)."""

    seeds: int
    threshold: float
    data: str
    images: int
    epochs: int
    steps_per_epoch: int
    window_steps: int
    batch: int
    rates: list[float]
    paper_speed_up: float
    chosen_rates: dict[str, float]
    sweep: dict[str, dict[str, int]]
    thresholds: dict[str, ThresholdSteps]


@dataclass(frozen=True)
class Figure1Run(Record):
    """figure1.json: Figure 1's summary and every seed's per-step training error, per activation; a resumed study
    with the same seeds, epochs and threshold reads it back instead of training again."""

    KIND: ClassVar[str] = "figure1"
    WRITTEN_BY: ClassVar[str] = "`make claims`"

    summary: Figure1Summary
    step_errors: dict[str, list[list[float]]]


@dataclass(frozen=True)
class ClaimsStudy(Record):
    """claims.json (`make claims`): the study's settings, every claim's result, Figure 1's and every arm's runs."""

    KIND: ClassVar[str] = "claims"
    WRITTEN_BY: ClassVar[str] = "`make claims`"

    provenance: Provenance
    config: str
    overrides: list[str]
    seeds: int
    train_error_threshold: float
    claims: list[ClaimResult]
    figure1: Figure1Summary | None
    figure1_claim: ClaimResult | None
    runs: dict[str, list[ArmRun]]


@dataclass(frozen=True)
class ArchRun:
    """One finished run of the comparison: its final and best validation errors, training images/s (over the steps
    of the run), peak memory, the training and validation seconds until the first epoch at the target error
    (None: never reached) and its epochs."""

    val_top1_error: float
    val_top5_error: float
    best_val_top1_error: float
    train_images_per_second: float
    peak_memory_gb: float
    seconds_to_target: float | None
    epochs: int


@dataclass(frozen=True)
class ArchSummary:
    """One architecture of the comparison: its size, cost and inference speed (the seed-0 network as trained), its
    runs, and the medians over them."""

    parameters: int
    multiply_adds: int
    image_size: int
    inference_images_per_second: float
    runs: list[ArchRun]
    val_top1_error: float
    val_top5_error: float
    train_images_per_second: float
    peak_memory_gb: float


@dataclass(frozen=True)
class CompareStudy(Record):
    """compare.json (`make compare`): every architecture's summary and the gradient norms of ResNet-18 and
    plain-18 per layer ({arch: {"start" or "after epoch 1": {layer: norm}}})."""

    KIND: ClassVar[str] = "compare"
    WRITTEN_BY: ClassVar[str] = "`make compare`"

    provenance: Provenance
    config: str
    overrides: list[str]
    seeds: int
    target_val_error: float
    architectures: dict[str, ArchSummary]
    gradient_norms: dict[str, dict[str, dict[str, float]]]
