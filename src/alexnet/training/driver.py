"""Training: `train_and_evaluate(config, run_dir)` builds the model inside a tf.distribute strategy, runs
model.fit on the tf.data pipeline with backups, TensorBoard reporting and the best model kept, and exports
a SavedModel at the end. Running the same command again after a crash resumes where the backup left off.

The driver is a sequence of named stages: strategy, seeds, data, model, callbacks, fit, finish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet import rundir
from alexnet.architectures import build_from_config
from alexnet.config import Config
from alexnet.data.pipeline import dataset_info, make_dataset, training_sample, training_stream
from alexnet.data.service import through_service
from alexnet.data.sources import DatasetInfo
from alexnet.errors import ConfigError, PeerLostError
from alexnet.export import export_run
from alexnet.files import write_json
from alexnet.metrics import LoggedErrors, compiled_metrics, errors_of, training_loss, validation_errors
from alexnet.optim import PaperSGD
from alexnet.random_streams import StepSeeds
from alexnet.records import BestEpoch, DataInfo, FinalMetrics, FittedErrors, RunInfo, provenance
from alexnet.rundir import RunDir, RunLock
from alexnet.training.agreement import JobAgreement
from alexnet.training.checkpoints import (
    Backup,
    SavedBackup,
    disk_full_error,
    find_backup,
    is_disk_full,
    restore,
    state_bytes,
)
from alexnet.training.cluster import (
    SINGLE_WORKER,
    PeerWatchdog,
    Task,
    current_task,
    is_peer_loss,
    peer_lost_message,
    set_tf_config_from_trainjob,
)
from alexnet.training.finetune import FreezeLayers, load_matching_weights
from alexnet.training.guards import DivergenceGuard, SignalStop
from alexnet.training.layer_stats import weighted_layers
from alexnet.training.memory import peak_memory_gb
from alexnet.training.precision import resolve_precision
from alexnet.training.reporting import TrainingReporter
from alexnet.training.schedule import PlateauRule, ScheduledRate, learning_rate_schedule
from alexnet.training.snapshots import START, Position
from alexnet.training.stall import StallWatch
from alexnet.training.upstream_fixes import apply_multi_worker_fixes


def train_and_evaluate(config: Config, run_dir: str | Path) -> FinalMetrics | None:
    """Trains config's model into run_dir, exports it and returns its final metrics (final_metrics.json).

    Under MultiWorkerMirroredStrategy only the chief exports and reports: the other workers return None.
    """
    started = time.perf_counter()
    set_tf_config_from_trainjob()  # in a TrainJob's pod, before anything reads TF_CONFIG
    run, task = RunDir(run_dir), current_task()
    strategy = make_strategy(config.train, task)
    seed_run(config.train)
    with RunLock(run.path) if task.is_chief else contextlib.nullcontext():  # one writer per run directory
        run.start(config, write=task.is_chief)
        backup = find_backup(run / rundir.BACKUP)
        data = load_data(config, run, strategy, task, backup.position if backup else START)
        with strategy.scope():  # the schedule's variable (the plateau rule's drops) is the strategy's
            rate = learning_rate_schedule(config.train, data.steps_per_epoch)
        model = build_model(config, len(data.info.class_names), strategy, rate)
        if backup:
            with strategy.scope():  # the optimizer's variables are built there
                restore(model, backup)
            print(f"resumed at epoch {backup.position.epoch + 1}, step {backup.position.step} "
                  f"(backup {backup.manifest.with_suffix('')})", flush=True)
        callbacks = make_callbacks(config, run, data, rate, task, backup)
        fit_start = time.perf_counter()
        history = fit(model, data, callbacks, config.train, task)
        fit_seconds = time.perf_counter() - fit_start
        reporter = next((c for c in callbacks if isinstance(c, TrainingReporter)), None)
        host = next(c for c in callbacks if isinstance(c, Backup)).host
        fitted = fitted_errors(model, config, run) if task.is_chief and config.eval.train_error_images else None
        return finish(run, model, history, Timing(started, fit_seconds, reporter), fitted, task,
                      host.model if host else None)


def make_strategy(train_config, task: Task = SINGLE_WORKER) -> tf.distribute.Strategy:
    """The tf.distribute strategy of train.strategy, created before any other TensorFlow work.

    MultiWorkerMirroredStrategy when asked, or on "auto" when TF_CONFIG names more than one task (with the
    upstream workarounds of alexnet/training/upstream_fixes.py); MirroredStrategy when asked, or on "auto" with more
    than one GPU; otherwise the default strategy. Also splits the CPU into train.cpu_devices logical
    devices.
    """
    if train_config.strategy == "multi_worker" or (train_config.strategy == "auto" and task.count > 1):
        apply_multi_worker_fixes()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # before any other TensorFlow call
    else:
        if train_config.cpu_devices:
            split_cpu(train_config.cpu_devices)
        gpus = tf.config.list_logical_devices("GPU")
        if train_config.strategy == "mirrored" or (train_config.strategy == "auto" and len(gpus) > 1):
            strategy = tf.distribute.MirroredStrategy(devices=train_config.devices or None)
        else:
            strategy = tf.distribute.get_strategy()
    return strategy


def seed_run(train_config) -> None:
    """The seeds stage: Python's, NumPy's and the backend's global generators from train.seed (the model's
    and the pipeline's own streams derive from it too, alexnet/seeds.py), and TensorFlow's op determinism
    when train.deterministic asks for bit-identical runs."""
    keras.utils.set_random_seed(train_config.seed)
    if train_config.deterministic:
        tf.config.experimental.enable_op_determinism()


def strategy_name(strategy: tf.distribute.Strategy) -> str:
    """The strategy's public name (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"
    return type(strategy).__name__


def split_cpu(count: int) -> None:
    """Splits the CPU into `count` logical devices (to try MirroredStrategy without GPUs); must run first."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


@dataclasses.dataclass
class TrainingData:
    """The distributed training and validation datasets and what the loop needs to know about them."""

    info: DatasetInfo
    steps_per_epoch: int
    validation_steps: int | None  # None: the whole validation split
    start: Position  # where training starts (resumes)
    train: tf.distribute.DistributedDataset  # from start; its epoch start.epoch has only the steps left
    val: tf.distribute.DistributedDataset
    sample: tuple | None  # (images, labels): 16 augmented training images for TensorBoard and the stall check
    train_after: tf.distribute.DistributedDataset | None  # from the epoch after start's, when start is mid-epoch


def load_data(config: Config, run: RunDir, strategy: tf.distribute.Strategy, task: Task = SINGLE_WORKER,
              start: Position = START) -> TrainingData:
    """The data stage: class names into the run, the batch checked against the replicas, one pipeline per worker,
    the training data from `start` (a resumed run's position)."""
    t = config.train
    info = dataset_info(config.data)
    steps_per_epoch = plan_steps(t, info, strategy.num_replicas_in_sync)
    if task.is_chief:
        write_json(run / rundir.CLASSES, info.class_names)
        run_info(run, config, info, strategy, task).write(run / rundir.RUN_INFO)
    print(f"strategy {strategy_name(strategy)}, {task.count} worker(s) (this is {task.name}"
          f"{', the chief' if task.is_chief else ''}), {strategy.num_replicas_in_sync} replica(s), per-replica "
          f"batch {t.global_batch_size // strategy.num_replicas_in_sync}, global batch {t.global_batch_size}; "
          f"{info.num_train} training and {info.num_val} validation images in {len(info.class_names)} classes; "
          f"{steps_per_epoch} steps per epoch", flush=True)
    train, after, val, sample = make_pipelines(config, f"{run.name}-{os.getpid()}", strategy, steps_per_epoch, start)
    # Workers must run the same number of validation steps (each is a collective): whole global batches only.
    validation_steps = t.validation_steps or (max(1, info.num_val // t.global_batch_size) if task.count > 1 else None)
    return TrainingData(info, steps_per_epoch, validation_steps, start, train, val, sample, after)


def run_info(run: RunDir, config: Config, info: DatasetInfo, strategy: tf.distribute.Strategy, task: Task) -> RunInfo:
    """What a reader of the run wants to know besides the config: the command, commit, machine and versions of its
    first start, when it last started, on which data. A resumed run keeps its first start and counts the resumes."""
    previous = run.info() if (run / rundir.RUN_INFO).exists() else None
    made = provenance(gpus=[d.name for d in tf.config.list_logical_devices("GPU")])
    return RunInfo(
        provenance=previous.provenance if previous else made, last_start=made.date,
        resumes=previous.resumes + 1 if previous else 0, strategy=strategy_name(strategy),
        replicas=strategy.num_replicas_in_sync, workers=task.count,
        data=DataInfo(config.data.source, config.data.name, config.data.dir, len(info.class_names), info.num_train,
                      info.num_val))


def make_pipelines(config: Config, job_prefix: str, strategy: tf.distribute.Strategy, steps_per_epoch: int,
                   start: Position = START) -> tuple:
    """The distributed training datasets (endless, steps_per_epoch batches an epoch): from start, and from the
    epoch after start's when start is mid-epoch (else None); the distributed validation dataset; and 16
    augmented training images with their labels for TensorBoard and the stall check (None when none of them
    wants it)."""
    t, data = config.train, config.data

    def pipeline(split):
        return lambda ctx: make_dataset(data, split, config.model.image_size, t.global_batch_size, t.seed,
                                        t.deterministic, ctx)

    def train_pipeline(position: Position, job: str):
        # Endless and starting where the run resumes: every epoch has steps_per_epoch batches, those an
        # uninterrupted run draws. Through the tf.data service, every service worker must shuffle and augment
        # differently: no fixed seed.
        def from_context(ctx):
            stream = training_stream(data, config.model.image_size, t.global_batch_size,
                                     None if data.service else t.seed, t.deterministic, ctx, position.epoch,
                                     position.step, steps_per_epoch)
            # A job name is never reused while a service lives.
            return through_service(stream, data.service, f"alexnet-{job}-{ctx.input_pipeline_id}") \
                if data.service else stream

        return strategy.distribute_datasets_from_function(from_context)

    train = train_pipeline(start, job_prefix)
    after = train_pipeline(Position(start.epoch + 1), f"{job_prefix}-after") if start.step else None
    val = strategy.distribute_datasets_from_function(pipeline("val"))
    sample = None
    if config.tensorboard.images or config.tensorboard.layer_stats_steps or t.stall_epochs:
        images, labels = next(iter(pipeline("train")(None)))
        sample = (images[:16], labels[:16])
    return train, after, val, sample


def plan_steps(train_config, info: DatasetInfo, replicas: int) -> int:
    """Steps per epoch; ConfigError when the global batch does not split over the replicas or fill one step, or
    train.steps_per_epoch asks for more than one pass over the training images."""
    batch = train_config.global_batch_size
    if batch % replicas:
        raise ConfigError(f"train.global_batch_size={batch} must be a multiple of the {replicas} replicas")
    whole = info.num_train // batch
    if whole == 0:
        raise ConfigError(f"train.global_batch_size={batch} exceeds the {info.num_train} training images")
    if train_config.steps_per_epoch > whole:
        raise ConfigError(f"train.steps_per_epoch={train_config.steps_per_epoch} is more than one pass over the "
                          f"{info.num_train} training images ({whole} steps of {batch}): an epoch is at most one pass; "
                          f"set it to {whole} or less, or 0 for a whole pass")
    return train_config.steps_per_epoch or whole


def build_model(config: Config, num_classes: int, strategy: tf.distribute.Strategy,
                learning_rate: float | keras.optimizers.schedules.LearningRateSchedule | None = None) -> keras.Model:
    """The model stage: the configured AlexNet, built and compiled inside the strategy's scope, started from
    model.init_from's weights when given; the optimizer's rate is learning_rate (default train.learning_rate)."""
    t = config.train
    precision, why = resolve_precision(t.precision)
    with strategy.scope():
        model = build_from_config(config.model, num_classes, dtype_policy=precision, seed=t.seed)
        if config.model.init_from:
            kept = load_matching_weights(model, config.model.init_from)
            print(f"weights from {config.model.init_from}; initialised afresh: {'; '.join(kept) or 'none'}")
        compile_model(model, t, precision, learning_rate)
    print(f"model {model.name}: {model.count_params():,} parameters, precision {precision} ({why}), "
          f"jit_compile {t.jit_compile}", flush=True)
    return model


def compile_model(model: keras.Model, train_config, precision: str = "float32", learning_rate=None) -> None:
    """SGD with momentum and the paper's coupled weight decay (loss-scaled under mixed_float16, the resolved
    precision) at learning_rate (a rate or a Keras schedule; default train.learning_rate); loss, top-1 and top-5
    accuracy."""
    optimizer = PaperSGD(
        learning_rate=train_config.learning_rate if learning_rate is None else learning_rate,
        momentum=train_config.momentum,
        paper_weight_decay=train_config.weight_decay,
        decay_biases=train_config.decay_biases,
        frozen_layers=train_config.freeze,  # the config check sets freeze and freeze_epochs together
        global_clipnorm=train_config.clip_norm or None,
    )
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    model.compile(optimizer=optimizer, loss=training_loss(train_config.label_smoothing),
                  metrics=compiled_metrics(), jit_compile=train_config.jit_compile)


def make_callbacks(config: Config, run: RunDir, data: TrainingData, rate: ScheduledRate,
                   task: Task = SINGLE_WORKER, resumed: SavedBackup | None = None) -> list:
    """The callbacks stage, in the order Keras calls them: the divergence check (before anything saves a
    step), the paper's plateau rule on rate (its state written before the backup that resumes from it), backups
    and the best model, the per-step random streams, TensorBoard reporting and the stall check (the chief's),
    frozen layers, and last the stop on a signal (every other callback has seen the step). In a multi-worker
    job the backups' steps are agreed on through the coordination service (alexnet/training/agreement.py)."""
    t = config.train
    chief = task.is_chief
    agreement = JobAgreement(task, t.peer_timeout_seconds) if task.count > 1 else None
    backup = Backup(run, data.steps_per_epoch, t.epochs, t.backup_every_steps, t.backup_every_seconds, task, resumed,
                    agreement)
    reporter = TrainingReporter(run.path, config, t.global_batch_size, sample=data.sample,
                                every_steps=config.tensorboard.every_steps) if chief else None
    if reporter:
        backup.epoch_end_writers.append(reporter.write_weight_summaries)
    return [
        DivergenceGuard(len(data.info.class_names), t.max_loss_multiple, data.steps_per_epoch),
        *([PlateauRule(t, rate, run / rundir.LR_SCHEDULE, write_state=chief)] if t.schedule == "paper" else []),
        backup,
        StepSeeds(),
        *([reporter] if reporter else []),
        *([StallWatch(reporter, t.stall_epochs, len(data.info.class_names))] if reporter and t.stall_epochs else []),
        *([FreezeLayers(t.freeze, t.freeze_epochs)] if t.freeze else []),
        SignalStop(backup),
    ]


def fit(model: keras.Model, data: TrainingData, callbacks: list, train_config,
        task: Task = SINGLE_WORKER) -> keras.callbacks.History:
    """The fit stage: model.fit for the epochs left, from data.start.

    A run resumed mid-epoch trains the rest of that epoch in a fit of its own (its first steps are in the
    backup: fit cannot start an epoch at a step), then the epochs after it; the History holds both.
    SIGTERM and SIGINT stop the run after the current step (SignalStop; in a multi-worker job, every worker
    after the next step). In a multi-worker job a lost peer ends training with PeerLostError (exit status 138:
    restart all workers): from TensorFlow's error, or from a watchdog when no step finishes in
    train.peer_timeout_seconds. A full disk anywhere in the run's writers ends it with DiskFullError. Whatever
    ends it, the backup write in flight commits first.
    """
    watchdog = PeerWatchdog(task, train_config.peer_timeout_seconds) if task.count > 1 else None
    if watchdog:
        tick = lambda *args, **kwargs: watchdog.tick()  # noqa: E731
        callbacks = [*callbacks, keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda *args: watchdog.tick(slow=True), on_train_batch_end=tick, on_epoch_end=tick,
            on_test_batch_end=tick)]
    signals = next(c for c in callbacks if isinstance(c, SignalStop))
    backup = next(c for c in callbacks if isinstance(c, Backup))
    start, steps = data.start, data.steps_per_epoch
    # (training data, first epoch, end epoch, steps per epoch) of each fit.
    parts = [(data.train, start.epoch, train_config.epochs, steps)]
    if start.step:
        parts = [(data.train, start.epoch, start.epoch + 1, steps - start.step),
                 (data.train_after, start.epoch + 1, train_config.epochs, steps)]
    history = keras.callbacks.History()
    history.on_train_begin()  # an empty record, to which each fit's epochs are added
    try:
        signals.install()
        for train, first, end, part_steps in parts:
            if first >= end:
                continue
            part = model.fit(
                train,
                initial_epoch=first,
                epochs=end,
                steps_per_epoch=part_steps,
                validation_data=data.val,
                validation_steps=data.validation_steps,
                callbacks=callbacks,
                shuffle=False,  # the tf.data pipeline shuffles
                verbose=1 if sys.stdout.isatty() else 0,  # a progress bar on a terminal; TrainingReporter's line always
            )
            for key, values in part.history.items():
                history.history.setdefault(key, []).extend(values)
            history.epoch += part.epoch
        backup.writer.wait()  # the last epoch's backup and best model are committed (or their error raised)
    except Exception as e:
        with contextlib.suppress(Exception):  # the write in flight commits before the failure is reported
            backup.writer.wait()
        if watchdog and is_peer_loss(e):
            raise PeerLostError(peer_lost_message(task, str(e))) from e
        if is_disk_full(e):
            raise disk_full_error(backup.dir.parent, state_bytes(model)) from e
        raise
    finally:
        signals.uninstall()
        if backup.agreement:
            backup.agreement.close()
        if watchdog:
            watchdog.stop()
    return history


def fitted_errors(model: keras.Model, config: Config, run: RunDir) -> FittedErrors:
    """How well the final weights fit the training data: eval.train_error_images training images (a fixed
    sample, alexnet/data/pipeline.py's training_sample) scored in inference mode with the eval pre-processing,
    and the overfitting gap, the final validation top-1 error minus theirs (section 4's "overfitting")."""
    started = time.perf_counter()
    predict = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    probabilities, labels = [], []
    for images, batch_labels in training_sample(config.data, config.model.image_size, config.train.global_batch_size,
                                                config.eval.train_error_images):
        probabilities.append(np.asarray(predict(images), np.float32))
        labels.append(batch_labels.numpy())
    errors = errors_of(np.concatenate(probabilities), np.concatenate(labels))
    final_val = run.history()[-1].val_top1_error
    print(f"the final weights on {errors.images} training images in inference mode: top-1 error "
          f"{errors.top1_error:.2%}, top-5 error {errors.top5_error:.2%}; final validation top-1 error "
          f"{final_val:.2%}, a gap of {final_val - errors.top1_error:+.2%} ({time.perf_counter() - started:.0f} s)",
          flush=True)
    return FittedErrors(train_top1_error=errors.top1_error, train_top5_error=errors.top5_error, train_loss=errors.loss,
                        train_images=errors.images, final_val_top1_error=final_val,
                        overfitting_gap=final_val - errors.top1_error)


@dataclasses.dataclass(frozen=True)
class Timing:
    """Where a process's time went: when train_and_evaluate began (perf_counter), the seconds in model.fit, and
    the reporter that summed the training steps' and validation's seconds (None on a worker other than the chief)."""

    started: float
    fit_seconds: float
    reporter: TrainingReporter | None


def finish(run: RunDir, model: keras.Model, history: keras.callbacks.History, timing: Timing,
           fitted: FittedErrors | None, task: Task = SINGLE_WORKER,
           export_model: keras.Model | None = None) -> FinalMetrics | None:
    """The finish stage: the chief exports the best model (through export_model, the backups' host copy of the
    model, when there is one) and writes the final metrics (the run is then complete) and prints the run's
    closing lines; every worker reports, in a multi-worker job with a digest of its weights (equal on all).
    Returns the final metrics (None on a worker other than the chief)."""
    if task.count > 1:
        digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()
        print(f"{task.name}: final weights sha256 {digest}", flush=True)
    if not task.is_chief:
        print(f"{task.name}: training done; the chief writes the run's files", flush=True)
        return None
    best = BestEpoch.read(run / rundir.BEST_RECORD)
    export_dir = export_run(run.path, export_model)
    final = FinalMetrics(
        # The convolutions' policy: the model's own is float32, and so are its pre-processing, LRN and softmax.
        best=best, parameters=model.count_params(), precision=weighted_layers(model)[0].dtype_policy.name,
        fit_seconds=timing.fit_seconds, train_seconds=timing.reporter.train_seconds,
        validation_seconds=timing.reporter.validation_seconds, wall_seconds=time.perf_counter() - timing.started,
        peak_memory_gb=peak_memory_gb(), fitted=fitted)
    final.write(run / rundir.FINAL_METRICS)
    shutil.rmtree(run / rundir.BACKUP, ignore_errors=True)  # the run is complete; its backups are not needed
    print(closing_lines(run, final, validation_errors({k: v[-1] for k, v in history.history.items() if v}),
                        history.epoch[-1] + 1 if history.epoch else None, export_dir), flush=True)
    return final


def closing_lines(run: RunDir, final: FinalMetrics, val: LoggedErrors | None, last_epoch: int | None,
                  export_dir) -> str:
    """What a finished run prints last: its final and best errors, where it is, what to run next, where the time
    went. val: the final epoch's validation errors (None when a resumed run had no epoch left to train)."""
    best = final.best
    lines = [f"\nfinal validation top-1 error {val.top1_error:.2%}, top-5 error {val.top5_error:.2%} "
             f"(epoch {last_epoch})"] if val else []
    rest = final.outside_steps_seconds
    lines += [
        f"run directory: {run.path}",
        f"best validation top-1 error {best.val_top1_error:.2%}, top-5 error {best.val_top5_error:.2%} "
        f"(epoch {best.epoch}, chosen on this validation split, so an optimistic figure for new images; kept as "
        f"{rundir.BEST_MODEL} and exported)",
        f"SavedModel:  {export_dir}",
        *(f"{label:<12} {command}" for label, command in next_commands(run.name)),
        f"time: {final.wall_seconds:.0f} s in all, {final.train_seconds:.0f} s of training steps and "
        f"{final.validation_seconds:.0f} s of validation; {rest:.0f} s ({rest / final.wall_seconds:.0%}) for the rest "
        f"(start-up, backups, best model, TensorBoard, export); peak memory {final.peak_memory_gb:.1f} GB",
    ]
    return "\n".join(lines)


def next_commands(run_name: str) -> list[tuple[str, str]]:
    """(what, command) of what to run next on a finished run: the README's list (a test holds the two equal)."""
    named = "" if run_name == "demo" else f" RUN={run_name}"
    return [("TensorBoard:", "make tensorboard   (then open http://localhost:6006)"),
            ("predict:", f'make predict{named} IMAGES="path/to/image.jpg"'),
            ("evaluate:", f"make eval{named}"),
            ("report:", f"make report{named}")]
