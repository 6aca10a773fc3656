"""`make lr-find`: the range test's rates, per-step losses, suggestion, plot and TensorBoard series."""


import numpy as np
import pytest
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.records import LrFindResult
from alexnet.studies.lr_find import RangeTest, find_learning_rate, range_schedule, suggest
from helpers import all_tags, scalars, tiny_config


def test_each_steps_loss_is_recovered_from_kerass_running_mean():
    test = RangeTest(smoothing=0.5)
    test.set_model(type("M", (), {"stop_training": False})())
    losses = [2.0, 1.0, 4.0, 3.0]
    for batch in range(len(losses)):
        test.on_train_batch_end(batch, {"loss": np.mean(losses[: batch + 1])})
    np.testing.assert_allclose(test.losses, losses)
    np.testing.assert_allclose(test.smoothed, [2.0, 1.5, 2.75, 2.875])


def test_the_rate_grows_geometrically_from_the_lowest_to_the_highest():
    schedule = range_schedule(1e-3, 1.0, steps=4)
    np.testing.assert_allclose([float(schedule(s)) for s in range(4)], [1e-3, 1e-2, 1e-1, 1.0], rtol=1e-6)


def test_the_suggestion_is_a_tenth_of_the_rate_at_the_lowest_smoothed_loss():
    rates = np.geomspace(1e-4, 1, 5)
    assert suggest(rates, [2.3, 2.2, 1.4, 1.9, 9.0], uniform=np.log(10)) == {
        "suggested_learning_rate": pytest.approx(1e-3), "lowest_loss_learning_rate": pytest.approx(1e-2),
        "lowest_smoothed_loss": 1.4, "learnt": True}


def test_no_rate_is_suggested_when_the_loss_never_left_the_uniform_guess():
    # ln(10) = 2.303; the lowest smoothed loss 2.25 is above 95% of it (2.19): nothing was learnt.
    result = suggest(np.geomspace(1e-4, 1, 4), [5.0, 2.31, 2.25, 7.0], uniform=np.log(10))
    assert result["suggested_learning_rate"] is None and result["learnt"] is False
    assert result["lowest_loss_learning_rate"] == pytest.approx(1e-4 * 10 ** (8 / 3))


@pytest.mark.slow
def test_range_test_writes_the_curve_the_plot_and_tensorboard(small_data, tmp_path):
    config = tiny_config(small_data, "lr_find.steps=12", "lr_find.min_lr=1e-4", "lr_find.max_lr=10",
                         "tensorboard.images=false")
    result = find_learning_rate(config, tmp_path / "probe")
    record = LrFindResult.read(tmp_path / "probe" / rundir.LR_FIND_RECORD)
    assert record == result
    steps = record.steps
    assert 5 <= steps <= 12 and len(record.losses) == len(record.learning_rates) == steps
    # The rates the optimizer used, step by step.
    np.testing.assert_allclose(record.learning_rates, np.geomspace(1e-4, 10, 12)[:steps], rtol=1e-6)
    lowest = int(np.argmin(record.smoothed_losses))
    assert record.learnt == (record.smoothed_losses[lowest] < 0.95 * np.log(10))
    expected = record.learning_rates[lowest] / 10 if record.learnt else None
    assert record.suggested_learning_rate == (pytest.approx(expected) if expected else None)
    png = (tmp_path / "probe" / rundir.LR_FIND_PLOT).read_bytes()
    assert tf.io.decode_png(png).shape[-1] in (3, 4)
    series = scalars(tmp_path / "probe" / rundir.LR_FIND)
    assert [step for step, _ in series[tags.LOSS]] == list(range(steps))
    np.testing.assert_allclose([v for _, v in series[tags.LEARNING_RATE]], record.learning_rates, rtol=1e-6)
    assert tags.LR_FIND_PLOT in all_tags(tmp_path / "probe" / rundir.LR_FIND)
    assert not (tmp_path / "probe" / rundir.BEST_MODEL).exists()  # a probe: no model kept
