"""Training: `train_and_evaluate(config, run_dir)` builds the model inside a tf.distribute strategy, runs
model.fit on the tf.data pipeline with backups, TensorBoard reporting and the best model kept, and exports
a SavedModel at the end. Running the same command again after a crash resumes where the backup left off.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from alexnet.config import Config, save_config
from alexnet.export import BEST_MODEL, export_run, load_best_model
from alexnet.input_pipeline import dataset_info, make_dataset
from alexnet.model import build_from_config
from alexnet.optim import PaperSGD
from alexnet.reporting import TrainingReporter
from alexnet.schedule import LearningRateController

CLASSES_FILE = "classes.json"
DONE_FILE = "final_metrics.json"


def split_cpu(count: int) -> None:
    """Splits the CPU into `count` logical devices (to try MirroredStrategy without GPUs); must run first."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def make_strategy(train_config) -> tf.distribute.Strategy:
    """MirroredStrategy when asked, or on "auto" with more than one GPU; otherwise the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if train_config.strategy == "mirrored" or (train_config.strategy == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy(devices=train_config.devices or None)
    return tf.distribute.get_strategy()


def compile_model(model: keras.Model, train_config) -> None:
    """SGD with momentum and the paper's coupled weight decay; loss, top-1 and top-5 accuracy."""
    optimizer = PaperSGD(
        learning_rate=train_config.learning_rate,
        momentum=train_config.momentum,
        paper_weight_decay=train_config.weight_decay,
        decay_biases=train_config.decay_biases,
    )
    if train_config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow without it
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
        jit_compile=train_config.jit_compile,
    )


class Backup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that saves at every epoch end as well as every `save_freq` steps."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # the parent saves only on its step count then
            self._save_model()  # the parent's own save (weights, optimizer, epoch; double-checkpointed)


class KeepBest(keras.callbacks.Callback):
    """Saves the model as .keras whenever the validation top-1 error is the lowest so far (survives resumes)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.path = run_dir / BEST_MODEL
        self.record = run_dir / "best.json"

    def on_epoch_end(self, epoch, logs=None):
        if not logs or "val_top1" not in logs:
            return
        error = 1.0 - float(logs["val_top1"])
        best = json.loads(self.record.read_text())["val_top1_error"] if self.record.exists() else None
        if best is None or error < best:
            tmp = self.path.with_name("best.tmp.keras")
            self.model.save(tmp)
            os.replace(tmp, self.path)  # a crash mid-save leaves the previous best intact
            self.record.write_text(json.dumps({"epoch": epoch + 1, "val_top1_error": error,
                                               "val_top5_error": 1.0 - float(logs["val_top5"])}))


def train_and_evaluate(config: Config, run_dir: str | Path) -> dict:
    """Trains config's model into run_dir, exports it and returns the final validation metrics."""
    run_dir = Path(run_dir)
    t = config.train
    if t.cpu_devices:
        split_cpu(t.cpu_devices)
    if (run_dir / DONE_FILE).exists():
        sys.exit(f"error: {run_dir} already holds a finished run; choose another RUN=name or remove the directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    keras.utils.set_random_seed(t.seed)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()

    info = dataset_info(config)
    (run_dir / CLASSES_FILE).write_text(json.dumps(info.class_names, indent=1))
    strategy = make_strategy(t)
    replicas = strategy.num_replicas_in_sync
    if t.global_batch_size % replicas:
        sys.exit(f"error: train.global_batch_size={t.global_batch_size} must be a multiple of the {replicas} replicas")
    steps_per_epoch = t.steps_per_epoch or info.num_train // t.global_batch_size
    if steps_per_epoch == 0:
        sys.exit(f"error: train.global_batch_size={t.global_batch_size} exceeds the {info.num_train} training images")
    print(f"strategy {type(strategy).__name__} with {replicas} replica(s), per-replica batch "
          f"{t.global_batch_size // replicas}, global batch {t.global_batch_size}; {info.num_train} training and "
          f"{info.num_val} validation images in {len(info.class_names)} classes; {steps_per_epoch} steps per epoch",
          flush=True)

    with strategy.scope():
        model = build_from_config(config.model, len(info.class_names), dtype_policy=t.precision, seed=t.seed)
        compile_model(model, t)
    print(f"model {model.name}: {model.count_params():,} parameters, precision {t.precision}, "
          f"jit_compile {t.jit_compile}", flush=True)

    # Repeated, so that every epoch has steps_per_epoch batches however often fit() is resumed.
    train_data = strategy.distribute_datasets_from_function(lambda ctx: make_dataset(config, "train", ctx).repeat())
    val_data = strategy.distribute_datasets_from_function(lambda ctx: make_dataset(config, "val", ctx))
    sample = next(iter(make_dataset(config, "train")))[0][:16] if config.tensorboard.images else None

    backup = Backup(str(run_dir / "backup"), save_freq=t.backup_every_steps or "epoch", double_checkpoint=True)
    callbacks = [
        backup,
        LearningRateController(t, steps_per_epoch, run_dir / "lr_schedule.json"),
        TrainingReporter(run_dir, config, t.global_batch_size, sample_images=sample,
                         every_steps=config.tensorboard.every_steps),
        KeepBest(run_dir),
    ]
    start = time.perf_counter()
    history = model.fit(
        train_data,
        epochs=t.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=val_data,
        validation_steps=t.validation_steps or None,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=1 if sys.stdout.isatty() else 0,  # a progress bar on a terminal; TrainingReporter's line always
    )
    best = json.loads((run_dir / "best.json").read_text())

    export_dir = export_run(run_dir)
    final = {**best, "train_seconds": time.perf_counter() - start}
    (run_dir / DONE_FILE).write_text(json.dumps(final, indent=1))
    shutil.rmtree(run_dir / "backup", ignore_errors=True)  # the run is complete; its backups are not needed
    last = history.history
    if last.get("val_top1"):  # empty when a resumed run had no epoch left to train
        print(f"\nfinal validation top-1 error {1 - last['val_top1'][-1]:.2%}, "
              f"top-5 error {1 - last['val_top5'][-1]:.2%} (epoch {t.epochs})")
    print(f"run directory: {run_dir}\n"
          f"best validation top-1 error {best['val_top1_error']:.2%}, top-5 error {best['val_top5_error']:.2%} "
          f"(epoch {best['epoch']}; kept as {BEST_MODEL} and exported)\n"
          f"SavedModel:  {export_dir}\n"
          f"TensorBoard: make tensorboard   (then open http://localhost:6006)\n"
          f"predict:     make predict RUN={run_dir.name} IMAGES=\"path/to/image.jpg\"", flush=True)
    return final


def evaluate_run(config: Config, run_dir: str | Path) -> dict:
    """Top-1 / top-5 error of run_dir's best model on the validation split (centre crop)."""
    run_dir = Path(run_dir)
    model = load_best_model(run_dir)
    results = model.evaluate(make_dataset(config, "val"), return_dict=True, verbose=2)
    metrics = {"top1_error": 1.0 - results["top1"], "top5_error": 1.0 - results["top5"], "loss": results["loss"]}
    print(f"{run_dir}: validation top-1 error {metrics['top1_error']:.2%}, top-5 error {metrics['top5_error']:.2%}")
    return metrics
