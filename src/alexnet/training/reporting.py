"""The training run's reporter: one Keras callback that composes the writers of the run's record.

Per step (every tensorboard.every_steps): training scalars; every tensorboard.layer_stats_steps, per-layer
statistics (layer_stats.py). Per epoch: the epoch's scalars (scalars.py), its console line and history.csv row
(history.py), peak memory (memory.py), the augmented inputs (pictures.py), and, from the epoch's backup snapshot
behind the step (write_weight_summaries), conv1's filters and the weight histograms (histograms.py). Once:
the config as text and the hparams (hparams.py); at the run's end, the final metrics; an optional profiler trace.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.config import config_yaml
from alexnet.metrics import errors, validation_errors
from alexnet.records import HistoryRow, append_history
from alexnet.training.histograms import write_weight_histograms
from alexnet.training.hparams import write_hparams
from alexnet.training.layer_stats import LayerProbe
from alexnet.training.memory import peak_memory_gb
from alexnet.training.pictures import EpochPictures
from alexnet.training.scalars import RUN, TRAIN, VALIDATION, EventWriters
from alexnet.training.snapshots import Snapshot


class TrainingReporter(keras.callbacks.Callback):
    """Writes the run's TensorBoard summaries and history.csv, and prints one line per epoch (module doc)."""

    def __init__(self, run_dir, config, global_batch_size: int, sample=None, every_steps: int = 10):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.config = config
        self.global_batch_size = global_batch_size
        self.sample = sample  # (images, labels): a fixed batch of augmented training images, or None
        self.every_steps = every_steps
        self.events = EventWriters(self.run_dir)
        self.pictures = EpochPictures(sample, config.train.seed)
        self._probe = None  # the LayerProbe, built on first use (probe())
        self.profile_range = config.tensorboard.profile_steps  # [first, last] or None
        self.final_errors = None  # the last epoch's validation errors (LoggedErrors)
        # The steps' and the validation's share of the wall time, over every fit() of this process (a run
        # resumed mid-epoch fits twice).
        self.train_seconds = self.validation_seconds = 0.0

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def probe(self) -> LayerProbe:
        """The per-layer statistics of the model (layer_stats.py), built once; the stall watch reuses it."""
        self._probe = self._probe or LayerProbe(self.model)
        return self._probe

    def _learning_rate(self) -> float:
        return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        step = self._step()
        if self.events.is_new(RUN, tags.CONFIG, step):
            with self.events.run_writer(step):
                write_hparams(self.config, trial_id=self.run_dir.name)
                tf.summary.text(tags.CONFIG, "```\n" + config_yaml(self.config) + "```")
        self._interval_start = (time.perf_counter(), step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.epoch_start = (time.perf_counter(), self._step())
        self.epoch_train_seconds = self.epoch_validation_seconds = None  # this epoch's two phases

    def on_test_begin(self, logs=None):  # fit's validation pass: the training steps of the epoch are done
        self.epoch_train_seconds = time.perf_counter() - self.epoch_start[0]
        self.validation_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.epoch_validation_seconds = time.perf_counter() - self.validation_start

    def on_train_batch_begin(self, batch, logs=None):
        self.step_rate = self._learning_rate()  # the rate this step trains with (its schedule's, before the step)
        if self.profile_range and self.epoch == 0 and batch == self.profile_range[0]:
            tf.profiler.experimental.start(str(self.run_dir / rundir.PROFILE))
        every = self.config.tensorboard.layer_stats_steps
        if every and self.sample is not None and (step := self._step()) % every == 0:
            self.events.scalars(TRAIN, step, self.probe()(*self.sample))

    def on_train_batch_end(self, batch, logs=None):
        if self.profile_range and self.epoch == 0 and batch == self.profile_range[1]:
            tf.profiler.experimental.stop()
        step = self._step()
        if step % self.every_steps == 0 and logs:
            now = time.perf_counter()
            start, start_step = self._interval_start
            rate = (step - start_step) * self.global_batch_size / max(now - start, 1e-9)
            self._interval_start = (now, step)
            self.events.scalars(TRAIN, step, {**errors(logs).scalars(), tags.LEARNING_RATE: self.step_rate,
                                              tags.IMAGES_PER_SECOND: rate})

    def on_epoch_end(self, epoch, logs=None):
        row = self._history_row(epoch, logs or {})
        self.events.scalars(TRAIN, row.step, {tags.epoch(metric): value for metric, value in (
            (tags.LOSS, row.loss), (tags.TOP1_ERROR, row.top1_error), (tags.TOP5_ERROR, row.top5_error),
            (tags.LEARNING_RATE, row.learning_rate), (tags.IMAGES_PER_SECOND, row.images_per_second),
            (tags.TIME, row.seconds), (tags.TRAIN_TIME, row.train_seconds),
            (tags.VALIDATION_TIME, row.validation_seconds), (tags.PEAK_MEMORY_GB, row.peak_memory_gb))})
        if row.val_loss is not None:
            self.events.scalars(VALIDATION, row.step, {tags.epoch(tags.LOSS): row.val_loss,
                                                       tags.epoch(tags.TOP1_ERROR): row.val_top1_error,
                                                       tags.epoch(tags.TOP5_ERROR): row.val_top5_error})
        print(row.line(self.config.train.epochs), flush=True)
        append_history(self.run_dir / rundir.HISTORY, row)
        if self.config.tensorboard.images and self.events.is_new(RUN, tags.INPUTS, row.step):
            with self.events.run_writer(row.step):
                self.pictures.write_inputs(self.model, row.step)
        self.events.flush()

    def write_weight_summaries(self, snapshot: Snapshot) -> None:
        """conv1's filters and the weight histograms at an epoch's end, from that epoch's backup snapshot (its
        host copy of the model): the backup writer's thread calls it, behind the training step."""
        step, model, board = snapshot.global_step, snapshot.host.model, self.config.tensorboard
        first = tags.FILTERS if board.images else tags.weights(model.trainable_weights[0].path)
        if not (board.images or board.histograms) or not self.events.is_new(RUN, first, step):
            return  # nothing asked for, or written before this run was resumed
        with self.events.run_writer(step):
            if board.images:
                self.pictures.write_filters(model, step)
            if board.histograms:
                write_weight_histograms(model, step)
        self.events.flush()

    def _history_row(self, epoch: int, logs: dict) -> HistoryRow:
        """The epoch's record: Keras's logs, the rate of its last step, the timing of this epoch's phases and the
        peak memory."""
        step = self._step()
        seconds = time.perf_counter() - self.epoch_start[0]  # the whole epoch: steps, validation, callbacks
        train_seconds = seconds if self.epoch_train_seconds is None else self.epoch_train_seconds
        validation_seconds = self.epoch_validation_seconds or 0.0
        self.train_seconds += train_seconds
        self.validation_seconds += validation_seconds
        trained = (step - self.epoch_start[1]) * self.global_batch_size
        train, val = errors(logs), validation_errors(logs)
        self.final_errors = val or self.final_errors
        return HistoryRow(
            epoch=epoch + 1, step=step, loss=train.loss, top1_error=train.top1_error, top5_error=train.top5_error,
            val_loss=val and val.loss, val_top1_error=val and val.top1_error, val_top5_error=val and val.top5_error,
            learning_rate=self.step_rate, images_per_second=trained / max(train_seconds, 1e-9),
            train_seconds=train_seconds, validation_seconds=validation_seconds, seconds=seconds,
            peak_memory_gb=peak_memory_gb())

    def on_train_end(self, logs=None):
        if self.final_errors and self.epoch + 1 == self.config.train.epochs:  # the run's last epoch, once
            with self.events.run_writer(self._step()):
                for metric, value in self.final_errors.scalars().items():
                    tf.summary.scalar(tags.final(metric), value)
        self.events.flush()
