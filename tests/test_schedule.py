"""Learning-rate schedules: the paper's divide-by-10 on a plateau (at most max_lr_drops times), step, warm-up,
and the state a resumed run picks up."""

import math
from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf

from alexnet.config import TrainConfig
from alexnet.rundir import RunDir
from alexnet.training.checkpoints import Backup
from alexnet.training.driver import load_data, make_callbacks
from alexnet.training.schedule import LearningRateController
from helpers import tiny_config


def controller(tmp_path, steps_per_epoch=4, **train):
    callback = LearningRateController(TrainConfig(learning_rate=0.1, **train), steps_per_epoch, tmp_path / "lr.json")
    callback.set_model(SimpleNamespace(optimizer=keras.optimizers.SGD(0.1)))
    return callback


def val_logs(top1: float) -> dict:
    """The logs Keras passes at the end of an epoch with validation."""
    return {"loss": 1.0, "top1": 0.5, "top5": 0.9, "val_loss": 1.0, "val_top1": top1, "val_top5": 0.9}


def begin_step(callback, epoch, batch):
    """on_train_batch_begin at that step, the optimizer's step count where fit would have it."""
    callback.model.optimizer.iterations.assign(epoch * callback.steps_per_epoch + batch)
    callback.on_train_batch_begin(batch)


def epoch_rates(callback, val_top1, first_epoch=0):
    """The rate of the first step of each epoch, with val_top1[i] reported at the end of epoch first_epoch + i."""
    rates = []
    for epoch, top1 in enumerate(val_top1, start=first_epoch):
        callback.on_epoch_begin(epoch)
        begin_step(callback, epoch, 0)
        rates.append(float(callback.model.optimizer.learning_rate))
        callback.on_epoch_end(epoch, val_logs(top1))
    return rates


def test_paper_schedule_divides_by_ten_after_patience_epochs_at_most_max_drops(tmp_path):
    callback = controller(tmp_path, schedule="paper", patience=2, max_lr_drops=2)
    # Improves in epochs 0-1, then stalls for good: drops after epochs 3 and 5, never a third time.
    rates = epoch_rates(callback, [0.5, 0.6, 0.6, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001])


def test_paper_schedule_waits_again_after_an_improvement(tmp_path):
    callback = controller(tmp_path, schedule="paper", patience=2)
    rates = epoch_rates(callback, [0.5, 0.5, 0.6, 0.6, 0.6, 0.6])  # stall, improve, stall twice -> one drop
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1, 0.01])


def test_step_schedule_and_linear_warmup(tmp_path):
    callback = controller(tmp_path, schedule="step", step_epochs=2, warmup_epochs=1)
    callback.on_epoch_begin(0)
    warmup = []
    for batch in range(4):
        begin_step(callback, 0, batch)
        warmup.append(float(callback.model.optimizer.learning_rate))
    assert warmup == pytest.approx([0.025, 0.05, 0.075, 0.1])
    callback.on_epoch_end(0, val_logs(0.5))
    assert epoch_rates(callback, [0.5] * 4, first_epoch=1) == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_resumed_controller_continues_with_the_saved_state(tmp_path):
    epoch_rates(controller(tmp_path, schedule="paper", patience=1), [0.5, 0.5, 0.5])  # drops after epochs 1, 2
    resumed = controller(tmp_path, schedule="paper", patience=1)
    assert epoch_rates(resumed, [0.5], first_epoch=3) == pytest.approx([0.001])


def test_cosine_schedule_falls_from_the_rate_to_zero_after_the_warmup(tmp_path):
    callback = controller(tmp_path, steps_per_epoch=4, schedule="cosine", warmup_epochs=1, epochs=3)
    rates = {}
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
        for batch in range(4):
            begin_step(callback, epoch, batch)
            rates[epoch * 4 + batch] = float(callback.model.optimizer.learning_rate)
        callback.on_epoch_end(epoch, val_logs(0.5))
    assert [rates[s] for s in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # warm-up
    # 8 steps after the warm-up: 0.1 * (1 + cos(pi * k / 8)) / 2 at step 4 + k.
    assert [rates[4 + k] for k in range(8)] == pytest.approx([0.05 * (1 + math.cos(math.pi * k / 8)) for k in range(8)])


def test_a_resume_reads_the_latest_state_on_record_and_the_driver_writes_it_before_the_backup(tmp_path, small_data):
    epoch_rates(controller(tmp_path, schedule="paper", patience=1), [0.5, 0.5, 0.5])  # drops after epochs 1, 2
    resumed = controller(tmp_path, schedule="paper", patience=1)
    # A backup from after epoch 4 whose schedule entries end at epoch 2: the state then, not the initial rate.
    assert epoch_rates(resumed, [0.5], first_epoch=5) == pytest.approx([0.001])

    config = tiny_config(small_data)
    run = RunDir(tmp_path / "run")
    run.start(config)
    callbacks = make_callbacks(config, run, load_data(config, run, tf.distribute.get_strategy()))
    kinds = [type(c) for c in callbacks]
    assert kinds.index(LearningRateController) < kinds.index(Backup)  # Keras calls on_epoch_end in list order


def test_the_rate_follows_the_optimizers_step_not_the_batch_index(tmp_path):
    """A run resumed mid-epoch fits the rest of that epoch with batch indices from 0: the warm-up must follow
    the step the backup restored."""
    callback = controller(tmp_path, schedule="constant", warmup_epochs=1)
    callback.on_epoch_begin(0)
    callback.model.optimizer.iterations.assign(2)  # resumed after 2 of 4 warm-up steps
    callback.on_train_batch_begin(0)
    assert float(callback.model.optimizer.learning_rate) == pytest.approx(0.075)
