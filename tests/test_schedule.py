"""Learning rates: the Keras schedules (warm-up, step, cosine) step by step, the paper's divide-by-10 on a plateau
(at most max_lr_drops times), and the state a resumed run picks up."""

import math
from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf

from alexnet.config import TrainConfig
from alexnet.rundir import RunDir
from alexnet.training.checkpoints import Backup
from alexnet.training.driver import load_data, make_callbacks
from alexnet.training.schedule import PlateauRule, ScheduledRate, learning_rate_schedule
from helpers import tiny_config


def rates(steps_per_epoch=4, steps=12, **train) -> list[float]:
    """The schedule's rate at steps 0 .. steps - 1, through an optimizer as fit drives it."""
    optimizer = keras.optimizers.SGD(learning_rate_schedule(TrainConfig(learning_rate=0.1, **train), steps_per_epoch))
    out = []
    for step in range(steps):
        optimizer.iterations.assign(step)
        out.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    return out


def test_step_schedule_and_linear_warmup():
    got = rates(schedule="step", step_epochs=2, warmup_epochs=1, steps=20)
    assert got[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # the warm-up: (step + 1) / 4 of the rate
    # Divided by 10 every 2 epochs of 4 steps, counted from the run's first step.
    assert got[4:] == pytest.approx([0.1] * 4 + [0.01] * 8 + [0.001] * 4)


def test_cosine_schedule_falls_from_the_rate_to_zero_after_the_warmup():
    got = rates(schedule="cosine", warmup_epochs=1, epochs=3, steps=14)
    assert got[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # warm-up
    # 8 steps after the warm-up: 0.1 * (1 + cos(pi * k / 8)) / 2 at step 4 + k, then 0.
    assert got[4:12] == pytest.approx([0.05 * (1 + math.cos(math.pi * k / 8)) for k in range(8)], rel=1e-5)  # float32
    assert got[12:] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_constant_schedule_with_a_fractional_warmup():
    assert rates(schedule="constant", warmup_epochs=0.5, steps=4) == pytest.approx([0.05, 0.1, 0.1, 0.1])


def test_a_saved_model_keeps_its_schedule(tmp_path):
    """A .keras file holds the compiled optimizer's config: the schedule is serialised with it and loads back equal."""
    schedule = learning_rate_schedule(TrainConfig(learning_rate=0.1, schedule="cosine", warmup_epochs=1, epochs=3), 4)
    schedule.drops.assign(1)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again, ScheduledRate)
    assert [float(again(s)) for s in range(12)] == pytest.approx([float(schedule(s)) for s in range(12)])


def plateau(tmp_path, **train) -> PlateauRule:
    config = TrainConfig(learning_rate=0.1, schedule="paper", **train)
    schedule = learning_rate_schedule(config, steps_per_epoch=4)
    rule = PlateauRule(config, schedule, tmp_path / "lr.json")
    rule.set_model(SimpleNamespace(optimizer=keras.optimizers.SGD(schedule)))
    return rule


def val_logs(top1: float) -> dict:
    """The logs Keras passes at the end of an epoch with validation."""
    return {"loss": 1.0, "top1": 0.5, "top5": 0.9, "val_loss": 1.0, "val_top1": top1, "val_top5": 0.9}


def epoch_rates(rule, val_top1, first_epoch=0):
    """The rate of the first step of each epoch, with val_top1[i] reported at the end of epoch first_epoch + i."""
    out = []
    for epoch, top1 in enumerate(val_top1, start=first_epoch):
        rule.on_epoch_begin(epoch)
        rule.model.optimizer.iterations.assign(epoch * 4)
        out.append(float(keras.ops.convert_to_numpy(rule.model.optimizer.learning_rate)))
        rule.on_epoch_end(epoch, val_logs(top1))
    return out


def test_paper_schedule_divides_by_ten_after_patience_epochs_at_most_max_drops(tmp_path):
    rule = plateau(tmp_path, patience=2, max_lr_drops=2)
    # Improves in epochs 0-1, then stalls for good: drops after epochs 3 and 5, never a third time.
    got = epoch_rates(rule, [0.5, 0.6, 0.6, 0.55, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001])


def test_paper_schedule_waits_again_after_an_improvement(tmp_path):
    rule = plateau(tmp_path, patience=2)
    got = epoch_rates(rule, [0.5, 0.5, 0.6, 0.6, 0.6, 0.6])  # stall, improve, stall twice -> one drop
    assert got == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.1, 0.01])


def test_a_plateau_drop_reaches_the_compiled_training_step(tmp_path):
    """The drop is a variable the traced step reads: fit's own rate falls, no retrace needed."""
    config = TrainConfig(learning_rate=0.1, schedule="paper")
    schedule = learning_rate_schedule(config, steps_per_epoch=1)
    optimizer = keras.optimizers.SGD(schedule)
    weight = keras.Variable(0.0)
    step = tf.function(lambda: optimizer.apply_gradients([(tf.constant(1.0), weight)]))
    step()
    schedule.drops.assign(1)
    step()
    assert float(weight.numpy()) == pytest.approx(-0.1 - 0.01)


def test_resumed_rule_continues_with_the_saved_state(tmp_path):
    epoch_rates(plateau(tmp_path, patience=1), [0.5, 0.5, 0.5])  # drops after epochs 1, 2
    assert epoch_rates(plateau(tmp_path, patience=1), [0.5], first_epoch=3) == pytest.approx([0.001])


def test_a_resume_reads_the_latest_state_on_record_and_the_driver_writes_it_before_the_backup(tmp_path, small_data):
    epoch_rates(plateau(tmp_path, patience=1), [0.5, 0.5, 0.5])  # drops after epochs 1, 2
    # A backup from after epoch 4 whose schedule entries end at epoch 2: the state then, not the initial rate.
    assert epoch_rates(plateau(tmp_path, patience=1), [0.5], first_epoch=5) == pytest.approx([0.001])

    config = tiny_config(small_data, "train.schedule=paper")
    run = RunDir(tmp_path / "run")
    run.start(config)
    data = load_data(config, run, tf.distribute.get_strategy())
    callbacks = make_callbacks(config, run, data, learning_rate_schedule(config.train, data.steps_per_epoch))
    kinds = [type(c) for c in callbacks]
    assert kinds.index(PlateauRule) < kinds.index(Backup)  # Keras calls on_epoch_end in list order
