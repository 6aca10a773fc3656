"""`make bench`: training-step and input-pipeline throughput on this machine, measured in one run.

(a) model.fit steps on an in-memory synthetic uint8 batch: float32 / mixed_bfloat16, XLA off / on; with
    `--peers torch` (`make bench PEERS=torch`), PyTorch's step on the same network beside them (peers.py);
(b) the same step with lrn1/lrn2 replaced by identities, and the ratio LRN / no LRN; what a backup costs, in
    steps: what its snapshot adds to the steps, and the write behind them (alexnet/training/snapshots.py);
(c) the training input pipeline (make_dataset) on full-size JPEG files (also through a tf.data service
    dispatcher and worker in this process), on the same JPEGs upscaled (larger
    photos) and on prepared 256x256 records, each beside a bare read + tf.io.decode_jpeg loop over the same data;
    with peers, the JPEG files also through keras.utils.image_dataset_from_directory with the same crops and flips;
(d) model.fit fed by make_dataset from the JPEG files, and its ratio to the synthetic step;
(e) a short default training run (`python -m alexnet train`, the config's run for run_epochs epochs, every
    report on): its peak memory beside the synthetic step's, and how much of its wall time the training
    steps and the validation take.
Every img/s figure is the median of `reps` timed repetitions after a warm-up, with min-max. Each timed network
trains in a spawned process of its own: its memory is returned when it ends (Keras's clear_session does not
give it back: five full-size networks in one process held 4.9 GB), so the bench's own peak is one network's,
and each step's peak memory is its own. Prints one table and writes <logs>/bench.json (records.BenchResult).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet.bench import peers as peer_benchmarks
from alexnet.bench.gpu import EpochTimer
from alexnet.config import config_yaml
from alexnet.data import sources
from alexnet.data.demo import ensure_demo_data
from alexnet.data.pipeline import dataset_info, make_dataset
from alexnet.data.preprocess import decode_rgb
from alexnet.data.records import read_records
from alexnet.data.service import start_service, through_service
from alexnet.errors import ConfigError
from alexnet.files import write_text
from alexnet.model import LocalResponseNormalization, build_alexnet
from alexnet.native_logs import import_tensorflow_quietly
from alexnet.records import (
    PEER_RATIO,
    BenchResult,
    BenchSetup,
    FinalMetrics,
    MemoryPeak,
    Ratio,
    Throughput,
    provenance,
)
from alexnet.rundir import RunDir
from alexnet.training.checkpoints import write_backup
from alexnet.training.memory import peak_memory_gb
from alexnet.training.precision import resolve_precision
from alexnet.training.snapshots import HostCopy, Position, take_snapshot

AUTOTUNE = tf.data.AUTOTUNE
TARGETS = {"lrn": 0.80, "jpeg_pipeline": 1.0, "fit": 0.9, "run_steps_and_validation": 0.94}  # 6% outside
MEMORY_TARGET_GB = 4.0  # the peak of a default training run (a 16 GB laptop must hold it and more)


@dataclass
class BenchSettings:
    """What is measured and how often; the defaults fit in under 10 minutes on 2 CPU cores."""

    variant: str = "paper"
    width: float = 1.0  # 1.0 = the paper's network; tests use a tiny one
    batch: int = 64
    steps: int = 2  # training steps per timed repetition (a paper step is ~2 s on 2 CPU cores)
    reps: int = 5  # timed repetitions per figure, after one untimed repetition of the same size
    pipeline_batches: int = 32  # input-pipeline batches per timed repetition (about a second on 2 cores)
    pipeline_warmup: int = 8  # untimed batches first (fills the shuffle and prefetch buffers)
    precisions: tuple[str, ...] = ("float32", "mixed_bfloat16")
    jit: tuple[bool, ...] = (False, True)
    upscale: int = 2  # the larger-photo pipeline row: the JPEG files re-encoded this many times wider and taller
    large_images: int = 300
    run_epochs: int = 2  # (e): epochs of the default training run
    run_overrides: tuple[str, ...] = ()  # (e): overrides on top of the config (tests make the run tiny)


@dataclass(frozen=True)
class Timed:
    """What a timed network's process sends back: images/s of each repetition and the process's peak memory."""

    samples: list[float]
    peak_memory_gb: float


def throughput(key: str, label: str, samples: list[float]) -> Throughput:
    """The row of these per-repetition images/s: their median, min and max."""
    return Throughput(key, label, statistics.median(samples), min(samples), max(samples),
                      [round(sample, 2) for sample in samples])


def time_fit(model: keras.Model, dataset: tf.data.Dataset, settings: BenchSettings,
             callbacks: Sequence[keras.callbacks.Callback] = ()) -> list[float]:
    """Images/s of model.fit on an endless dataset: one untimed epoch (tracing, XLA), then `reps` timed epochs."""
    timer = EpochTimer()
    model.fit(dataset, steps_per_epoch=settings.steps, epochs=1 + settings.reps, verbose=0, shuffle=False,
              callbacks=[*callbacks, timer])
    return [settings.batch * settings.steps / s for s in timer.seconds[1:]]


def time_pipeline(dataset: tf.data.Dataset, settings: BenchSettings) -> list[float]:
    """Images/s of iterating an endless batched dataset, after pipeline_warmup untimed batches."""
    iterator = iter(dataset)
    for _ in range(settings.pipeline_warmup):
        next(iterator)
    samples = []
    for _ in range(settings.reps):
        start = time.perf_counter()
        for _ in range(settings.pipeline_batches):
            next(iterator)
        samples.append(settings.batch * settings.pipeline_batches / (time.perf_counter() - start))
    return samples


def training_batches(data, image_size: int, batch: int, seed: int) -> tf.data.Dataset:
    """make_dataset's training split of data, endless, at the benchmark's batch size."""
    return make_dataset(data, "train", image_size, batch, seed).repeat()


def synthetic_dataset(batch: int, image_size: int, num_classes: int) -> tf.data.Dataset:
    """One random uint8 batch in memory, repeated forever: a training step with no input cost."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, batch, dtype=np.int32)
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def without_lrn(model: keras.Model) -> keras.Model:
    """A fresh copy of model with every LocalResponseNormalization replaced by an identity layer."""

    def clone(layer):
        if isinstance(layer, LocalResponseNormalization):
            return keras.layers.Identity(name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


def _model(settings: BenchSettings, num_classes: int, image_size: int, precision: str, jit: bool, lrn: bool = True):
    """The benchmarked network, compiled with plain SGD + momentum and sparse categorical cross-entropy."""
    model = build_alexnet(settings.variant, num_classes, image_size, settings.width, dtype_policy=precision, seed=0)
    if not lrn:
        model = without_lrn(model)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=jit)
    return model


def fit_in_own_process(settings: BenchSettings, num_classes: int, image_size: int, precision: str, jit: bool,
                       lrn: bool = True, data=None, seed: int = 0) -> Timed:
    """time_fit of a fresh network in a spawned process of its own, on the synthetic batch (data None) or on
    make_dataset's training split of data."""
    spawn = multiprocessing.get_context("spawn")  # a forked child would share TensorFlow's threads and state
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn, initializer=import_tensorflow_quietly) as process:
        return process.submit(_fit_here, settings, num_classes, image_size, precision, jit, lrn, data, seed).result()


def _fit_here(settings, num_classes, image_size, precision, jit, lrn, data, seed) -> Timed:
    """fit_in_own_process's work, in the child."""
    if data is None:
        dataset = synthetic_dataset(settings.batch, image_size, num_classes)
    else:
        dataset = training_batches(data, image_size, settings.batch, seed)
    samples = time_fit(_model(settings, num_classes, image_size, precision, jit, lrn), dataset, settings)
    return Timed(samples, peak_memory_gb())


def backup_in_own_process(settings: BenchSettings, num_classes: int, image_size: int, precision: str,
                          jit: bool) -> tuple[float, float]:
    """(seconds a backup's snapshot costs the training steps, seconds of its write behind them), in a spawned
    process of its own."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn, initializer=import_tensorflow_quietly) as process:
        return process.submit(_backup_here, settings, num_classes, image_size, precision, jit).result()


class _SnapshotEveryStep(keras.callbacks.Callback):
    """Takes a backup's snapshot after every step and holds it until the next, as a write in flight holds it."""

    def __init__(self, host: HostCopy):
        super().__init__()
        self.host, self.snapshot = host, None

    def on_train_batch_end(self, batch, logs=None):
        self.snapshot = None
        self.snapshot = take_snapshot(self.model, self.host, Position(0, batch), batch)


def _backup_here(settings, num_classes, image_size, precision, jit) -> tuple[float, float]:
    """backup_in_own_process's work, in the child. The snapshot's cost is the steps' time with a snapshot after
    each minus without (the momentum and the weights it holds are copied by the next step's update, not by the
    snapshot: copy-on-write); the write (npz, flush, SHA-256, rename, manifest) is timed on its own."""
    model = _model(settings, num_classes, image_size, precision, jit)
    dataset = synthetic_dataset(settings.batch, image_size, num_classes)
    host = HostCopy(model)  # built before the first step, as training builds it
    plain = statistics.median(time_fit(model, dataset, settings))
    every = _SnapshotEveryStep(host)
    snapshotted = statistics.median(time_fit(model, dataset, settings, [every]))
    writes = []
    with tempfile.TemporaryDirectory() as folder:
        for rep in range(1 + settings.reps):  # the first untimed
            snapshot = take_snapshot(model, host, Position(0, rep), rep)
            started = time.perf_counter()
            write_backup(snapshot, Path(folder))
            writes.append(time.perf_counter() - started)
    return settings.batch / snapshotted - settings.batch / plain, statistics.median(writes[1:])


def _bare_decode(encoded: tf.data.Dataset, batch: int) -> tf.data.Dataset:
    """Read + tf.io.decode_jpeg only, in parallel, batched as shapes (decoded images differ in size)."""
    ds = encoded.repeat().map(lambda data: tf.shape(tf.io.decode_jpeg(data, channels=3)), num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = False  # as make_dataset's training split
    return ds.batch(batch).prefetch(AUTOTUNE).with_options(options)


def keras_directory_batches(data, image_size: int, batch: int, seed: int) -> tf.data.Dataset:
    """keras.utils.image_dataset_from_directory over data's training JPEGs, cropped and flipped as make_dataset does."""
    # crop_to_aspect_ratio: the central square resized to data.resize_size, as make_dataset's training images.
    images = keras.utils.image_dataset_from_directory(
        Path(data.dir) / data.train_split, batch_size=None, image_size=(data.resize_size, data.resize_size),
        crop_to_aspect_ratio=True, seed=seed, verbose=False)

    def crop_and_flip(image, label):
        crop = tf.image.random_crop(image, (image_size, image_size, 3))
        return tf.saturate_cast(tf.image.random_flip_left_right(crop), tf.uint8), label

    return images.repeat().map(crop_and_flip, num_parallel_calls=AUTOTUNE).batch(batch).prefetch(AUTOTUNE)


def upscaled_copies(root: str, split: str, out_dir: Path, settings: BenchSettings) -> Path:
    """out_dir/<split>/<class>/: up to settings.large_images of root's JPEGs, settings.upscale times larger.

    Larger photos are where decoding only the crop window, at a reduced DCT scale, pays; re-encoded at
    quality 90 by TensorFlow, so the benchmark needs no other image library.
    """
    class_names, files, labels = sources.list_folder(root, split)
    step = max(1, len(files) // settings.large_images)
    for path, label in zip(files[::step], labels[::step], strict=True):
        image = decode_rgb(tf.io.read_file(path))
        size = tf.shape(image)[:2] * settings.upscale
        large = tf.saturate_cast(tf.round(tf.image.resize(image, size, method="bicubic")), tf.uint8)
        target = out_dir / split / class_names[label] / (Path(path).stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(target), tf.io.encode_jpeg(large, quality=90))
    return out_dir


def _label(precision: str, jit: bool) -> str:
    return f"{precision}, XLA {'on' if jit else 'off'}"


def torch_ratios(step: dict[tuple[str, bool], float], torch: dict[str, float]) -> list[Ratio]:
    """This project's step (images/s by precision and XLA) over PyTorch's (by peers.SETTINGS key): float32 over
    float32 and mixed_bfloat16 over bfloat16 autocast, each at the project's faster XLA setting where that
    precision was measured, then the best over the best."""
    ratios = []
    for precision, setting in (("float32", "float32"), ("mixed_bfloat16", "bfloat16_autocast")):
        measured = [key for key in step if key[0] == precision]
        if measured:
            fastest = max(measured, key=step.get)
            ratios.append(Ratio(f"{PEER_RATIO}torch_{precision}", f"step {_label(*fastest)} / PyTorch step "
                                f"{peer_benchmarks.SETTINGS[setting]}", step[fastest] / torch[setting]))
    best, torch_best = max(step, key=step.get), max(torch, key=torch.get)
    ratios.append(Ratio(f"{PEER_RATIO}torch_best", f"best step ({_label(*best)}) / PyTorch's best "
                        f"({peer_benchmarks.SETTINGS[torch_best]})", step[best] / torch[torch_best]))
    return ratios


def run_benchmarks(config, logs_dir: str | Path, settings: BenchSettings | None = None,
                   peers: Sequence[str] = ()) -> BenchResult:
    """Runs (a)-(e) for config's data (source demo or folder), prints one table, writes logs_dir/bench.json.

    The LRN ratio and the fit from files use config.train.precision (auto resolved for this machine, and the
    table says to what) and config.train.jit_compile. peers (peers.KNOWN): other frameworks measured in the same
    run, and with any of them keras.utils.image_dataset_from_directory beside make_dataset; their ratios' keys
    start with PEER_RATIO (the pages quote those).
    """
    from alexnet.data.records import prepare

    settings = settings or BenchSettings()
    peer_benchmarks.require(peers)  # before anything is measured: a missing torch fails at once
    if config.data.source not in ("demo", "folder"):
        raise ConfigError(f"make bench reads JPEG files: data.source must be 'demo' or 'folder', "
                          f"got {config.data.source!r}")
    logs_dir = Path(logs_dir)
    started, load_before, made = time.perf_counter(), os.getloadavg()[0], provenance()
    ensure_demo_data(config.data)
    files_info = dataset_info(config.data)
    num_classes = len(files_info.class_names)
    image_size = config.model.image_size

    def train_pipeline(data):
        return training_batches(data, image_size, settings.batch, config.train.seed)
    rows, ratios = [], []

    def measure(key, label, samples):
        rows.append(throughput(key, label, samples))
        print(f"bench: {label}: {rows[-1].median:.1f} img/s", flush=True)
        return rows[-1].median

    def ratio(key, label, value, target=None):
        ratios.append(Ratio(key, label, value, target))

    # (a) the training step with no input cost, at each precision and XLA setting, each with its peak memory.
    step, step_peak = {}, {}
    for precision in settings.precisions:
        for jit in settings.jit:
            timed = fit_in_own_process(settings, num_classes, image_size, precision, jit)
            step_peak[precision, jit] = timed.peak_memory_gb
            step[precision, jit] = measure(f"step_{precision}_xla_{'on' if jit else 'off'}",
                                           f"step, synthetic uint8, {_label(precision, jit)}", timed.samples)
    if "torch" in peers:
        torch = {setting: measure(f"torch_{setting}", f"PyTorch step, synthetic uint8, {what}",
                                  peer_benchmarks.torch_step_in_own_process(
                                      setting, settings.width, settings.batch, settings.steps, settings.reps,
                                      num_classes, image_size))
                 for setting, what in peer_benchmarks.SETTINGS.items()}
        ratios.extend(torch_ratios(step, torch))
    # (b) the same step without LRN, at the config's training settings.
    precision, why = resolve_precision(config.train.precision)
    default = (precision, config.train.jit_compile)
    if default not in step:
        timed = fit_in_own_process(settings, num_classes, image_size, *default)
        step_peak[default] = timed.peak_memory_gb
        step[default] = measure("step_config", f"step, synthetic uint8, {_label(*default)}", timed.samples)
    no_lrn = measure("step_no_lrn", f"step, synthetic uint8, no LRN, {_label(*default)}",
                     fit_in_own_process(settings, num_classes, image_size, *default, lrn=False).samples)
    ratio("lrn", "step with LRN / without LRN", step[default] / no_lrn, TARGETS["lrn"])
    # What a backup costs: the snapshot the step waits for, and the write behind it, each in steps of this one.
    step_seconds = settings.batch / step[default]
    snapshot_seconds, write_seconds = backup_in_own_process(settings, num_classes, image_size, *default)
    ratio("backup_wait", f"backup: what its snapshot adds to the steps ({snapshot_seconds:.2f} s) / one step",
          snapshot_seconds / step_seconds)
    ratio("backup_write", f"backup: the write behind the step ({write_seconds:.2f} s) / one step",
          write_seconds / step_seconds)

    # (c) input pipelines: full-size JPEG files, the same upscaled, then prepared as 256x256 records.
    def pipeline_beside_bare(key, what, data, encoded, target=None):
        """make_dataset's training split beside a bare decode of the same encoded images; the pipeline's img/s."""
        pipeline = measure(f"pipeline_{key}", f"input make_dataset, {what}",
                           time_pipeline(train_pipeline(data), settings))
        bare = measure(f"bare_decode_{key}", "input bare read + decode_jpeg, same images",
                       time_pipeline(_bare_decode(encoded, settings.batch), settings))
        ratio(f"{key}_pipeline", f"make_dataset / bare decode, {what}", pipeline / bare, target)
        return pipeline

    def read_files(data):
        files = sources.folder_files(data.dir, data.train_split)[1]
        return tf.data.Dataset.from_tensor_slices(files).map(tf.io.read_file)

    # (c) and (d) decode the files every time: with data.cache (the demo's) they would time a copy from memory.
    jpeg_data = dataclasses.replace(config.data, cache=False)
    jpeg = pipeline_beside_bare("jpeg", "full-size JPEG files", jpeg_data, read_files(jpeg_data),
                                TARGETS["jpeg_pipeline"])
    if peers:
        keras_directory = measure(
            "keras_directory_jpeg", "input keras image_dataset_from_directory + crop + flip, same files",
            time_pipeline(keras_directory_batches(jpeg_data, image_size, settings.batch, config.train.seed),
                          settings))
        ratio(f"{PEER_RATIO}keras_directory", "make_dataset / keras image_dataset_from_directory, JPEG files",
              jpeg / keras_directory)
    dispatcher, _workers = start_service()  # one worker in this process: the service's overhead, not its gain
    served = measure("pipeline_jpeg_service", "input make_dataset through a local tf.data service, JPEG files",
                     time_pipeline(through_service(train_pipeline(jpeg_data), dispatcher.target, "bench"), settings))
    ratio("service", "through the tf.data service / in process, JPEG files", served / jpeg)
    large_dir = upscaled_copies(jpeg_data.dir, jpeg_data.train_split, logs_dir / "bench_large_jpegs", settings)
    large_data = dataclasses.replace(jpeg_data, source="folder", dir=str(large_dir))
    pipeline_beside_bare("large_jpeg", f"the JPEGs upscaled {settings.upscale}x", large_data, read_files(large_data))
    prepared = prepare(dataclasses.replace(jpeg_data, prepared_dir=str(logs_dir / "bench_records")))
    records_data = dataclasses.replace(jpeg_data, source="records", dir=str(prepared["dir"]))
    records = pipeline_beside_bare("records", "prepared 256x256 records", records_data,
                                   read_records(str(prepared["dir"]), "train").map(lambda data, label: data))
    ratio("records_speedup", "make_dataset records / JPEG files", records / jpeg)

    # (d) the whole training step fed from the JPEG files.
    fit = measure("fit_jpeg", f"fit from JPEG files via make_dataset, {_label(*default)}",
                  fit_in_own_process(settings, num_classes, image_size, *default, data=jpeg_data,
                                     seed=config.train.seed).samples)
    ratio("fit", f"fit from files / synthetic step, {_label(*default)}", fit / step[default], TARGETS["fit"])

    # (e) a short default training run in a process of its own.
    run = default_run(config, logs_dir, settings)
    memory = [MemoryPeak("peak_synthetic_step", f"peak memory, synthetic step, {_label(*default)}",
                         step_peak[default]),
              MemoryPeak("peak_default_run", f"peak memory, default training run ({settings.run_epochs} epochs)",
                         run.peak_memory_gb, MEMORY_TARGET_GB),
              MemoryPeak("peak_bench", "peak memory, make bench's own process (pipelines, records)",
                         peak_memory_gb(), MEMORY_TARGET_GB)]
    ratio("run_steps_and_validation", "training steps + validation / wall time, default run",
          (run.train_seconds + run.validation_seconds) / run.wall_seconds, TARGETS["run_steps_and_validation"])
    ratio("run_steps", "training steps / wall time, default run", run.train_seconds / run.wall_seconds)

    setup = BenchSetup(
        variant=settings.variant, width=settings.width, batch=settings.batch, steps=settings.steps, reps=settings.reps,
        pipeline_batches=settings.pipeline_batches, num_classes=num_classes, image_size=image_size,
        train_files=files_info.num_train, data_dir=config.data.dir, precision_setting=config.train.precision,
        precision=precision, precision_why=why,
        peers=[*peers, "keras.utils.image_dataset_from_directory"] if peers else [])
    result = BenchResult(provenance=made, setup=setup, rows=rows, ratios=ratios, memory=memory,
                         load_average_before=load_before, load_average_after=os.getloadavg()[0],
                         seconds=round(time.perf_counter() - started, 1))
    print(format_table(result))
    logs_dir.mkdir(parents=True, exist_ok=True)
    result.write(logs_dir / "bench.json")
    print(f"bench: wrote {logs_dir / 'bench.json'}")
    return result


def format_table(result: BenchResult) -> str:
    """The one table `make bench` prints: images/s (median, min-max), the ratios against their targets, the memory
    peaks, then the command, machine and versions that made it."""
    s = result.setup
    width = max(58, *(len(item.label) for item in (*result.rows, *result.ratios, *result.memory)))
    lines = [
        f"{s.variant} AlexNet (width {s.width}), batch {s.batch}, {s.num_classes} classes, "
        f"load {result.load_average_before:.1f}; median of {s.reps} reps ({s.steps} steps or {s.pipeline_batches} "
        f"batches each) after warm-up; {result.seconds:.0f} s; train.precision={s.precision_setting} trains in "
        f"{s.precision} here ({s.precision_why}); peers: {', '.join(s.peers)}",
        f"| {'measurement':<{width}} | {'img/s':>8} | {'min-max':>15} |",
        f"|{'-' * (width + 2)}|{'-' * 10}|{'-' * 17}|",
    ]
    for row in result.rows:
        spread = f"{row.min:.1f}-{row.max:.1f}"
        lines.append(f"| {row.label:<{width}} | {row.median:>8.1f} | {spread:>15} |")
    lines.append(f"| {'ratio':<{width}} | {'value':>8} | {'target':>15} |")
    for r in result.ratios:
        target = "" if r.target is None else f">= {r.target:.2f} {'met' if r.met else 'MISSED'}"
        lines.append(f"| {r.label:<{width}} | {r.value:>7.2f}x | {target:>15} |")
    lines.append(f"| {'memory':<{width}} | {'GB':>8} | {'target':>15} |")
    for m in result.memory:
        target = "" if m.target is None else f"<= {m.target:.1f} {'met' if m.met else 'MISSED'}"
        lines.append(f"| {m.label:<{width}} | {m.gb:>8.2f} | {target:>15} |")
    lines.append(result.provenance.line())
    return "\n".join(lines)


def default_run(config, logs_dir: Path, settings: BenchSettings) -> FinalMetrics:
    """Trains config for settings.run_epochs epochs with `python -m alexnet train` in a fresh process (so its
    peak memory is its own) into logs_dir/bench_run/; returns the run's final metrics."""
    run_dir = logs_dir / "bench_run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a finished run is never overwritten: start afresh
    logs_dir.mkdir(parents=True, exist_ok=True)
    config_path = logs_dir / "bench_run.yaml"
    write_text(config_path, config_yaml(config))
    command = [sys.executable, "-m", "alexnet", "train", "--config", str(config_path), "--logs", str(logs_dir),
               "--run", run_dir.name, f"train.epochs={settings.run_epochs}", *settings.run_overrides]
    print(f"bench: a default training run of {settings.run_epochs} epochs: {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"the bench's training run failed ({result.returncode}): {result.stderr[-2000:]}")
    return RunDir(run_dir).final_metrics()
