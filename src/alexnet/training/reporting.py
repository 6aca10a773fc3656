"""TensorBoard, console and history reporting for a training run.

Scalars use the optimizer's iteration count as their step, so a resumed run continues each series
instead of restarting it at 0; events at or below the last step already on disk are not written again.
Train scalars go to run_dir/train, validation scalars to run_dir/validation, everything else to run_dir.
Every epoch also appends one row to run_dir/history.csv (HISTORY_COLUMNS), the documented record that
studies read back (`read_history`).
"""

from __future__ import annotations

import csv
import resource
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.hparams import api as hp

from alexnet import rundir
from alexnet.config import DataConfig, ModelConfig, TrainConfig, choices, config_yaml
from alexnet.metrics import errors, validation_errors
from alexnet.seeds import stream_seed
from alexnet.training.layer_stats import LayerProbe, weighted_layers


def last_logged_steps(log_dir: Path) -> dict:
    """{tag: highest step already written} for the event files under log_dir."""
    last: dict = {}
    for path in Path(log_dir).glob(rundir.EVENT_FILES):
        try:
            for event in EventFileLoader(str(path)).Load():
                for value in event.summary.value:
                    last[value.tag] = max(last.get(value.tag, -1), event.step)
        except tf.errors.DataLossError:  # the tail of a file cut off by a crash
            pass
    return last


FILTER_ZOOM = 4
HISTORY_COLUMNS = ("epoch", "step", "loss", "top1_error", "top5_error", "val_loss", "val_top1_error",
                   "val_top5_error", "learning_rate", "images_per_second", "train_seconds", "validation_seconds",
                   "seconds", "peak_memory_gb")


HISTOGRAM_BUCKETS = 30  # tf.summary.histogram's default
HISTOGRAM_CHUNK = 1 << 22  # values counted at a time: 32 MB of float64, whatever the size of the weight
# Keras's training loss and errors are averaged over the steps with dropout and augmentation on: TensorBoard
# shows this beside them, so that no one reads them as how well the network fits its training images.
TRAINING_MODE = ("Training mode: averaged over the steps, with dropout and augmentation on. Not how well the "
                 "final weights fit the training images: eval.train_error_images measures that, in inference "
                 "mode (final_metrics.json).")
TRAINING_MODE_TAGS = {f"{prefix}{name}" for prefix in ("", "epoch_") for name in ("loss", "top1_error", "top5_error")}


def histogram_buckets(values, bucket_count: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """(bucket_count, 3) float64 rows [left edge, right edge, count]: the buckets tf.summary.histogram writes,
    counted in NumPy a chunk at a time.

    TensorBoard's own op counts through a float64 one-hot matrix of (values x buckets), 9 GB for fc6's 37.7M
    weights (tensorflow/tensorboard#6714); these are the same buckets (equal-width from the minimum to the
    maximum, the last one closed) in HISTOGRAM_CHUNK values of memory at a time. Values that are not finite (a
    diverged network's) are left out: they have no bucket.
    """
    flat = np.ravel(values)

    def finite_chunks():  # one chunk's copy at a time
        for start in range(0, flat.size, HISTOGRAM_CHUNK):
            chunk = flat[start : start + HISTOGRAM_CHUNK]
            if (chunk := chunk[np.isfinite(chunk)]).size:
                yield chunk

    extremes = [(float(c.min()), float(c.max()), c.size) for c in finite_chunks()]
    if not extremes:
        return np.zeros((bucket_count, 3))
    low, high = min(e[0] for e in extremes), max(e[1] for e in extremes)
    if low == high:  # TensorBoard's convention: every value in the last bucket, whose edges are the value
        return np.stack([np.full(bucket_count, high), np.full(bucket_count, high),
                         np.r_[np.zeros(bucket_count - 1), sum(e[2] for e in extremes)]], axis=1)
    width = (high - low) / bucket_count
    counts = np.zeros(bucket_count, np.int64)
    for chunk in finite_chunks():
        index = np.minimum(np.floor((chunk.astype(np.float64) - low) / width).astype(np.int64), bucket_count - 1)
        counts += np.bincount(index, minlength=bucket_count)
    edges = np.linspace(low, high, bucket_count + 1)
    edges[-1] = high
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)


def write_histogram(tag: str, values, step: int) -> None:
    """A histogram summary of values for TensorBoard's Histograms and Distributions tabs (the same event
    tf.summary.histogram writes), to the default writer."""
    tf.summary.write(tag, tf.constant(histogram_buckets(values), tf.float64), step=step,
                     metadata=histogram_metadata.create_summary_metadata(display_name=None, description=None))


def peak_memory_gb() -> float:
    """This process's peak resident memory so far, in GB.

    On Linux the VmHWM line of /proc/self/status: getrusage's ru_maxrss there starts a new program at the
    peak of the process that started it (a run that make compare or make bench starts would report their
    peak, not its own). Elsewhere ru_maxrss (bytes on macOS, KiB on the other systems).
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024 / 1e9
    except (OSError, StopIteration):
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 1e9 if sys.platform == "darwin" else maxrss * 1024 / 1e9


def append_history(path: Path, row: dict) -> None:
    """Appends one epoch's row (HISTORY_COLUMNS; missing values empty) to the history CSV, header first."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, HISTORY_COLUMNS, restval="")
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_history(run_dir) -> list[dict]:
    """history.csv's rows as {column: float, "epoch" and "step" int}, one per epoch in order: the last row
    written for an epoch that a resume ran again; a line cut short by a crash is left out."""
    rows = {}
    with open(Path(run_dir) / rundir.HISTORY, newline="") as f:
        for row in csv.DictReader(f):
            if None in row or any(row[c] is None for c in HISTORY_COLUMNS):
                continue  # a partial last line
            rows[int(row["epoch"])] = {c: (int(v) if c in ("epoch", "step") else float(v)) if v else None
                                       for c, v in row.items()}
    return [rows[e] for e in sorted(rows)]


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Arranges (N, H, W, C) images in [0, 1] into one (1, rows*(H+1), columns*(W+1), C) grid."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.ones((rows * (h + 1), columns * (w + 1), c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = image
    return grid[None]


def conv1_filter_grid(kernel: np.ndarray) -> np.ndarray:
    """conv1's (k, k, 3, F) kernel as a grid of RGB filters, each scaled to [0, 1] (the paper's Figure 3); a value
    that is not finite is drawn as 0."""
    filters = np.nan_to_num(np.transpose(kernel, (3, 0, 1, 2)).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    high = filters.max(axis=(1, 2, 3), keepdims=True)
    columns = max(1, int(np.ceil(np.sqrt(len(filters) * 1.5))))
    grid = tile((filters - low) / np.maximum(high - low, 1e-12), columns)
    return grid.repeat(FILTER_ZOOM, axis=1).repeat(FILTER_ZOOM, axis=2)  # 11x11 filters are too small to see


def first_convolution(model: keras.Model):
    """The layer that sees the RGB pixels: AlexNet's conv1, LeNet-5's c1, ResNet's conv1."""
    return next(layer for layer in weighted_layers(model) if len(layer.kernel.shape) == 4)


def hparam_value(value):
    """A config value as the HParams tab takes it: booleans as "true" / "false" (model.lrn mixes them with a
    string)."""
    return str(value).lower() if isinstance(value, bool) else value


def discrete(cls, key: str) -> hp.HParam:
    """The HParam of a Literal-typed config key, its domain the values the config accepts."""
    section = cls.__name__.removesuffix("Config").lower()
    return hp.HParam(f"{section}.{key}", hp.Discrete([hparam_value(v) for v in choices(cls, key)]))


# The keys that tell runs apart in TensorBoard's HParams tab, each with its domain (a declared domain gives the
# tab a typed axis: a key whose values mix None, numbers and strings breaks its numeric axes,
# tensorflow/tensorboard#4770, #2942), and the final metrics beside them. The whole config is the Text tab's.
HPARAMS = (
    discrete(ModelConfig, "arch"),
    discrete(ModelConfig, "variant"),
    hp.HParam("model.dropout", hp.RealInterval(0.0, 1.0)),
    discrete(ModelConfig, "lrn"),
    discrete(DataConfig, "augment"),
    hp.HParam("train.learning_rate", hp.RealInterval(0.0, 10.0)),
    hp.HParam("train.global_batch_size", hp.IntInterval(1, 1 << 20)),
    hp.HParam("train.epochs", hp.IntInterval(1, 1 << 20)),
    discrete(TrainConfig, "schedule"),
    discrete(TrainConfig, "precision"),
)
HPARAM_METRICS = (hp.Metric("final/top1_error", display_name="final val top-1 error"),
                  hp.Metric("final/top5_error", display_name="final val top-5 error"))


def run_hparams(config) -> dict:
    """{HParam: the run's value} of HPARAMS, each as its domain takes it."""
    values = {}
    for param in HPARAMS:
        section, key = param.name.split(".")
        values[param] = hparam_value(getattr(getattr(config, section), key))
    return values


class TrainingReporter(keras.callbacks.Callback):
    """Writes TensorBoard summaries and prints one line per epoch.

    Scalars (train and validation): loss, top-1/top-5 error, learning rate, images per second, epoch
    time; every `tensorboard.layer_stats_steps` steps, per-layer statistics (layer_stats.py). Images:
    augmented inputs as the network sees them, conv1 filters. Weight histograms, the resolved config as
    text and as hparams with the final metrics, and an optional profiler trace.
    """

    def __init__(self, run_dir, config, global_batch_size: int, sample=None, every_steps: int = 10):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.config = config
        self.global_batch_size = global_batch_size
        self.sample = sample  # (images, labels): a fixed batch of augmented training images, or None
        self.probe = None  # the LayerProbe, built on first use
        self.colour_noise = None  # a copy of the model's layer with a stream of its own (alexnet/seeds.py)
        self.every_steps = every_steps
        names = (rundir.TRAIN_EVENTS, rundir.VALIDATION_EVENTS, "")
        self.writers = {n: tf.summary.create_file_writer(str(self.run_dir / n)) for n in names}
        self.last_step = {n: last_logged_steps(self.run_dir / n) for n in names}
        self.profile_range = config.tensorboard.profile_steps  # [first, last] or None
        self.final_logs: dict = {}
        # The steps' and the validation's share of the wall time, over every fit() of this process (a run
        # resumed mid-epoch fits twice).
        self.totals = {"train_seconds": 0.0, "validation_seconds": 0.0}

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _is_new(self, writer: str, tag: str, step: int) -> bool:
        """True (and recorded) unless the tag already has an event at step or later, from before a resume."""
        if step <= self.last_step[writer].get(tag, -1):
            return False
        self.last_step[writer][tag] = step
        return True

    def _scalars(self, writer: str, step: int, values: dict) -> None:
        with self.writers[writer].as_default(step=step):
            for tag, value in values.items():
                if self._is_new(writer, tag, step):
                    training_mode = writer == rundir.TRAIN_EVENTS and tag in TRAINING_MODE_TAGS
                    tf.summary.scalar(tag, value, description=TRAINING_MODE if training_mode else None)

    def _learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        step = self._step()
        if self._is_new("", "config", step):
            with self.writers[""].as_default(step=step):
                hp.hparams_config(hparams=list(HPARAMS), metrics=list(HPARAM_METRICS))
                hp.hparams(run_hparams(self.config), trial_id=self.run_dir.name)
                tf.summary.text("config", "```\n" + config_yaml(self.config) + "```")
        self._interval_start = (time.perf_counter(), step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = (time.perf_counter(), self._step())
        self.phases = {}  # this epoch's training and validation seconds

    def on_test_begin(self, logs=None):  # fit's validation pass: the training steps of the epoch are done
        self.phases["train_seconds"] = time.perf_counter() - self.epoch_start[0]
        self.validation_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.phases["validation_seconds"] = time.perf_counter() - self.validation_start

    def on_train_batch_begin(self, batch, logs=None):
        if self.profile_range and self.epoch == 0 and batch == self.profile_range[0]:
            tf.profiler.experimental.start(str(self.run_dir / rundir.PROFILE))
        every = self.config.tensorboard.layer_stats_steps
        if every and self.sample is not None and (step := self._step()) % every == 0:
            self.probe = self.probe or LayerProbe(self.model)
            self._scalars(rundir.TRAIN_EVENTS, step, self.probe(*self.sample))

    def on_train_batch_end(self, batch, logs=None):
        if self.profile_range and self.epoch == 0 and batch == self.profile_range[1]:
            tf.profiler.experimental.stop()
        step = self._step()
        if step % self.every_steps == 0 and logs:
            now = time.perf_counter()
            start, start_step = self._interval_start
            rate = (step - start_step) * self.global_batch_size / max(now - start, 1e-9)
            self._interval_start = (now, step)
            self._scalars(rundir.TRAIN_EVENTS, step, {**errors(logs), "learning_rate": self._learning_rate(),
                                                      "images_per_second": rate})

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        step = self._step()
        seconds = time.perf_counter() - self.epoch_start[0]  # the whole epoch: steps, validation, callbacks
        phases = {"train_seconds": self.phases.get("train_seconds", seconds),
                  "validation_seconds": self.phases.get("validation_seconds", 0.0)}
        for name, value in phases.items():
            self.totals[name] += value
        rate = (step - self.epoch_start[1]) * self.global_batch_size / max(phases["train_seconds"], 1e-9)
        lr = self._learning_rate()
        train = {**errors(logs), "learning_rate": lr, "images_per_second": rate, "time": seconds,
                 "train_time": phases["train_seconds"], "validation_time": phases["validation_seconds"]}
        self._scalars(rundir.TRAIN_EVENTS, step, {f"epoch_{k}": v for k, v in train.items()})
        line = (f"epoch {epoch + 1}/{self.config.train.epochs}: loss {train['loss']:.4f}, "
                f"top-1 error {train['top1_error']:.2%}, top-5 error {train['top5_error']:.2%}")
        val = validation_errors(logs)
        if val:
            self._scalars(rundir.VALIDATION_EVENTS, step, {f"epoch_{k}": v for k, v in val.items()})
            line += (f" | val loss {val['loss']:.4f}, top-1 error {val['top1_error']:.2%}, "
                     f"top-5 error {val['top5_error']:.2%}")
            self.final_logs = {f"final/{k}": v for k, v in val.items()}
        memory = peak_memory_gb()
        self._scalars(rundir.TRAIN_EVENTS, step, {"epoch_peak_memory_gb": memory})
        print(f"{line} | lr {lr:.3g}, {rate:.1f} img/s, {phases['train_seconds']:.0f} s + validation "
              f"{phases['validation_seconds']:.0f} s, peak memory {memory:.1f} GB", flush=True)
        append_history(self.run_dir / rundir.HISTORY, {
            "epoch": epoch + 1, "step": step, **{k: train[k] for k in ("loss", "top1_error", "top5_error")},
            **({f"val_{k}": v for k, v in val.items()} if val else {}), "learning_rate": lr,
            "images_per_second": rate, **phases, "seconds": seconds, "peak_memory_gb": memory})
        if self._is_new("", "filters/conv1", step):
            self._epoch_images_and_histograms(step)
        for writer in self.writers.values():
            writer.flush()

    def _epoch_images_and_histograms(self, step: int) -> None:
        config = self.config.tensorboard
        with self.writers[""].as_default(step=step):
            if config.images:
                if self.sample is not None:
                    if self.colour_noise is None:
                        layer = self.model.get_layer("colour_noise")
                        seed = stream_seed(self.config.train.seed, "tensorboard/colour_noise")
                        self.colour_noise = type(layer).from_config({**layer.get_config(), "seed": seed})
                    seen = self.colour_noise(self.sample[0], training=True)
                    seen = np.clip(keras.ops.convert_to_numpy(seen), 0, 255) / 255.0
                    tf.summary.image("inputs/augmented", tile(seen, columns=8), step=step)
                kernel = keras.ops.convert_to_numpy(first_convolution(self.model).kernel)
                tf.summary.image("filters/conv1", conv1_filter_grid(kernel), step=step)
            if config.histograms:
                for weight in self.model.weights:
                    if weight.trainable:
                        write_histogram(f"weights/{weight.path}", keras.ops.convert_to_numpy(weight), step)

    def on_train_end(self, logs=None):
        if self.final_logs and self.epoch + 1 == self.config.train.epochs:  # the run's last epoch, once
            with self.writers[""].as_default(step=self._step()):
                for tag, value in self.final_logs.items():
                    tf.summary.scalar(tag, value)
        for writer in self.writers.values():
            writer.flush()
