"""Training: `train_and_evaluate(config, run_dir)` builds the model inside a tf.distribute strategy, runs
model.fit on the tf.data pipeline with backups, TensorBoard reporting and the best model kept, and exports
a SavedModel at the end. Running the same command again after a crash resumes where the backup left off.

The driver is a sequence of named stages: strategy, data, model, callbacks, fit, finish.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from alexnet import rundir
from alexnet.config import Config
from alexnet.errors import ConfigError
from alexnet.export import export_run
from alexnet.finetune import FreezeLayers, load_matching_weights
from alexnet.input_pipeline import make_dataset
from alexnet.metrics import compiled_metrics, validation_errors
from alexnet.model import build_from_config
from alexnet.optim import PaperSGD
from alexnet.reporting import TrainingReporter
from alexnet.rundir import RunDir, read_json, write_json
from alexnet.schedule import LearningRateController
from alexnet.sources import DatasetInfo, dataset_info


def train_and_evaluate(config: Config, run_dir: str | Path) -> dict:
    """Trains config's model into run_dir, exports it and returns the best epoch's validation metrics."""
    run = RunDir(run_dir)
    strategy = make_strategy(config.train)
    run.start(config)
    data = load_data(config, run, strategy)
    model = build_model(config, len(data.info.class_names), strategy)
    callbacks = make_callbacks(config, run, data)
    start = time.perf_counter()
    history = fit(model, data, callbacks, config.train)
    return finish(run, history, time.perf_counter() - start)


def make_strategy(train_config) -> tf.distribute.Strategy:
    """The tf.distribute strategy of train.strategy, created before any other TensorFlow work.

    MirroredStrategy when asked, or on "auto" with more than one GPU; otherwise the default strategy.
    Also splits the CPU into train.cpu_devices logical devices, and seeds every generator.
    """
    if train_config.cpu_devices:
        split_cpu(train_config.cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if train_config.strategy == "mirrored" or (train_config.strategy == "auto" and len(gpus) > 1):
        strategy = tf.distribute.MirroredStrategy(devices=train_config.devices or None)
    else:
        strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(train_config.seed)
    if train_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    return strategy


def split_cpu(count: int) -> None:
    """Splits the CPU into `count` logical devices (to try MirroredStrategy without GPUs); must run first."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


@dataclasses.dataclass
class TrainingData:
    """The distributed training and validation datasets and what the loop needs to know about them."""

    info: DatasetInfo
    steps_per_epoch: int
    train: tf.distribute.DistributedDataset
    val: tf.distribute.DistributedDataset
    sample: tuple | None  # (images, labels): 16 augmented training images for TensorBoard


def load_data(config: Config, run: RunDir, strategy: tf.distribute.Strategy) -> TrainingData:
    """The data stage: class names into the run, the batch checked against the replicas, one pipeline per worker."""
    t, data = config.train, config.data
    info = dataset_info(data)
    write_json(run / rundir.CLASSES, info.class_names)
    steps_per_epoch = plan_steps(t, info, strategy.num_replicas_in_sync)
    print(f"strategy {type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s), per-replica "
          f"batch {t.global_batch_size // strategy.num_replicas_in_sync}, global batch {t.global_batch_size}; "
          f"{info.num_train} training and {info.num_val} validation images in {len(info.class_names)} classes; "
          f"{steps_per_epoch} steps per epoch", flush=True)

    def pipeline(split):
        return lambda ctx: make_dataset(data, split, config.model.image_size, t.global_batch_size, t.seed,
                                        t.deterministic, ctx)

    # Repeated, so that every epoch has steps_per_epoch batches however often fit() is resumed.
    train = strategy.distribute_datasets_from_function(lambda ctx: pipeline("train")(ctx).repeat())
    val = strategy.distribute_datasets_from_function(pipeline("val"))
    tb = config.tensorboard
    sample = None
    if tb.images or tb.layer_stats_steps:
        images, labels = next(iter(pipeline("train")(None)))
        sample = (images[:16], labels[:16])
    return TrainingData(info, steps_per_epoch, train, val, sample)


def plan_steps(train_config, info: DatasetInfo, replicas: int) -> int:
    """Steps per epoch; ConfigError when the global batch does not split over the replicas or fill one step."""
    batch = train_config.global_batch_size
    if batch % replicas:
        raise ConfigError(f"train.global_batch_size={batch} must be a multiple of the {replicas} replicas")
    steps = train_config.steps_per_epoch or info.num_train // batch
    if steps == 0:
        raise ConfigError(f"train.global_batch_size={batch} exceeds the {info.num_train} training images")
    return steps


def build_model(config: Config, num_classes: int, strategy: tf.distribute.Strategy) -> keras.Model:
    """The model stage: the configured AlexNet, built and compiled inside the strategy's scope, started from
    model.init_from's weights when given."""
    t = config.train
    with strategy.scope():
        model = build_from_config(config.model, num_classes, dtype_policy=t.precision, seed=t.seed)
        if config.model.init_from:
            kept = load_matching_weights(model, config.model.init_from)
            print(f"weights from {config.model.init_from}; initialised afresh: {'; '.join(kept) or 'none'}")
        compile_model(model, t)
    print(f"model {model.name}: {model.count_params():,} parameters, precision {t.precision}, "
          f"jit_compile {t.jit_compile}", flush=True)
    return model


def compile_model(model: keras.Model, train_config) -> None:
    """SGD with momentum and the paper's coupled weight decay; loss, top-1 and top-5 accuracy."""
    optimizer = PaperSGD(
        learning_rate=train_config.learning_rate,
        momentum=train_config.momentum,
        paper_weight_decay=train_config.weight_decay,
        decay_biases=train_config.decay_biases,
        frozen_layers=train_config.freeze if train_config.freeze_epochs else (),
        global_clipnorm=train_config.clip_norm or None,
    )
    if train_config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=compiled_metrics(),
                  jit_compile=train_config.jit_compile)


class Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that saves at every epoch end as well as every `save_freq` steps."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # the parent saves only on its step count then
            self._save_model()  # the parent's own save (weights, optimizer, epoch; double-checkpointed)


class KeepBest(keras.callbacks.Callback):
    """Saves the model as .keras whenever the validation top-1 error is the lowest so far (survives resumes)."""

    def __init__(self, run: RunDir):
        super().__init__()
        self.path = run / rundir.BEST_MODEL
        self.record = run / rundir.BEST_RECORD

    def on_epoch_end(self, epoch, logs=None):
        val = validation_errors(logs)
        if val is None:
            return
        best = read_json(self.record)["val_top1_error"] if self.record.exists() else None
        if best is None or val["top1_error"] < best:
            tmp = self.path.with_name(".best.tmp.keras")
            self.model.save(tmp)
            tmp.replace(self.path)  # a crash mid-save leaves the previous best intact
            write_json(self.record, {"epoch": epoch + 1, "val_top1_error": val["top1_error"],
                                     "val_top5_error": val["top5_error"]})


def make_callbacks(config: Config, run: RunDir, data: TrainingData) -> list[keras.callbacks.Callback]:
    """The callbacks stage: backups, learning-rate schedule, TensorBoard reporting, best model."""
    t = config.train
    callbacks = [
        Backup(str(run / rundir.BACKUP), save_freq=t.backup_every_steps or "epoch", double_checkpoint=True),
        LearningRateController(t, data.steps_per_epoch, run / rundir.LR_SCHEDULE),
        TrainingReporter(run.path, config, t.global_batch_size, sample=data.sample,
                         every_steps=config.tensorboard.every_steps),
        KeepBest(run),
    ]
    return callbacks + ([FreezeLayers(t.freeze, t.freeze_epochs)] if t.freeze else [])


def fit(model: keras.Model, data: TrainingData, callbacks: list, train_config) -> keras.callbacks.History:
    """The fit stage: model.fit for the epochs left (a resumed run skips the finished ones)."""
    return model.fit(
        data.train,
        epochs=train_config.epochs,
        steps_per_epoch=data.steps_per_epoch,
        validation_data=data.val,
        validation_steps=train_config.validation_steps or None,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=1 if sys.stdout.isatty() else 0,  # a progress bar on a terminal; TrainingReporter's line always
    )


def finish(run: RunDir, history: keras.callbacks.History, train_seconds: float) -> dict:
    """The finish stage: export the best model, write the final metrics (the run is then complete), report."""
    best = read_json(run / rundir.BEST_RECORD)
    export_dir = export_run(run.path)
    final = {**best, "train_seconds": train_seconds}
    write_json(run / rundir.FINAL_METRICS, final)
    shutil.rmtree(run / rundir.BACKUP, ignore_errors=True)  # the run is complete; its backups are not needed
    val = validation_errors({k: v[-1] for k, v in history.history.items() if v})
    if val:  # None when a resumed run had no epoch left to train
        print(f"\nfinal validation top-1 error {val['top1_error']:.2%}, top-5 error {val['top5_error']:.2%} "
              f"(epoch {history.params['epochs']})")
    print(f"run directory: {run.path}\n"
          f"best validation top-1 error {best['val_top1_error']:.2%}, top-5 error {best['val_top5_error']:.2%} "
          f"(epoch {best['epoch']}; kept as {rundir.BEST_MODEL} and exported)\n"
          f"SavedModel:  {export_dir}\n"
          f"TensorBoard: make tensorboard   (then open http://localhost:6006)\n"
          f"predict:     make predict RUN={run.name} IMAGES=\"path/to/image.jpg\"", flush=True)
    return final
