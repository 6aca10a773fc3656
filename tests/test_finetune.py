"""Fine-tuning: a run started from a trained run's weights starts lower; mismatched layers are named; freezing."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet import rundir
from alexnet.errors import ConfigError, DataError
from alexnet.training.driver import build_model, train_and_evaluate
from alexnet.training.finetune import FreezeLayers
from helpers import scalars, tiny_config

QUIET = ["tensorboard.images=false", "tensorboard.histograms=false", "tensorboard.layer_stats_steps=0",
         "train.deterministic=true"]
# The source's network and the runs started from it: without dropout, as the source trained.
SOURCE = ["model.width=0.125", "model.dropout=0"]


@pytest.fixture(scope="module")
def trained_source(small_data, tmp_path_factory):
    """A tiny run (1/8 of the widths) trained for 40 epochs of 15 steps on small_data without dropout: it has
    learnt something (20 epochs leave it near the uniform guess)."""
    run_dir = tmp_path_factory.mktemp("source") / "source"
    train_and_evaluate(tiny_config(small_data, *SOURCE, "train.epochs=40", "train.steps_per_epoch=15",
                                   "train.learning_rate=0.01", "train.schedule=constant", *QUIET), run_dir)
    return run_dir / rundir.BEST_MODEL


def first_step_loss(run_dir) -> float:
    return scalars(run_dir / rundir.TRAIN_EVENTS)["loss"][0][1]


@pytest.mark.slow
def test_a_run_from_trained_weights_starts_with_a_lower_loss(trained_source, small_data, tmp_path, capsys):
    fresh, tuned = tmp_path / "fresh", tmp_path / "tuned"
    train_and_evaluate(tiny_config(small_data, *QUIET, *SOURCE, "model.zero_fc8=false"), fresh)  # a random start
    train_and_evaluate(tiny_config(small_data, *QUIET, *SOURCE, f"model.init_from={trained_source}"), tuned)
    assert f"weights from {trained_source}; initialised afresh: none" in capsys.readouterr().out
    # Below a random start and below the uniform guess by a margin (measured: 1.81 against 2.22 and ln(10) = 2.30).
    loss, random_start = first_step_loss(tuned), first_step_loss(fresh)
    assert loss < min(random_start, math.log(10)) - 0.1, (loss, random_start)


@pytest.mark.slow
def test_layers_whose_shapes_differ_keep_their_initialisation_and_are_named(trained_source, small_data, capsys):
    config = tiny_config(small_data, *SOURCE, f"model.init_from={trained_source}", "model.num_classes=3")
    model = build_model(config, 3, tf.distribute.get_strategy())
    out = capsys.readouterr().out
    assert "initialised afresh: fc8 ([(512, 10), (10,)] there, [(512, 3), (3,)] here)" in out
    source = keras.saving.load_model(trained_source, safe_mode=True, compile=False)
    np.testing.assert_array_equal(model.get_layer("fc7").kernel.numpy(), source.get_layer("fc7").kernel.numpy())


@pytest.mark.slow
def test_frozen_layers_keep_their_weights_for_their_epochs_then_train(small_data):
    config = tiny_config(small_data, "train.freeze=[conv1, conv5]", "train.freeze_epochs=1", "model.dropout=0",
                         "train.learning_rate=0.01")
    model = build_model(config, 10, tf.distribute.get_strategy())
    kernels = []
    watch = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: kernels.append(
        {n: model.get_layer(n).kernel.numpy().copy() for n in ("conv1", "conv4", "conv5")}))
    start = {n: model.get_layer(n).kernel.numpy().copy() for n in ("conv1", "conv4", "conv5")}
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 67, 67, 3), dtype=np.uint8), rng.integers(0, 10, 8)
    model.fit(images, labels, epochs=2, verbose=0, callbacks=[FreezeLayers(["conv1", "conv5"], 1), watch])
    for name in ("conv1", "conv5"):
        np.testing.assert_array_equal(kernels[0][name], start[name], err_msg=f"{name} moved while frozen")
        assert not np.array_equal(kernels[1][name], start[name]), f"{name} did not train after its frozen epoch"
    assert not np.array_equal(kernels[0]["conv4"], start["conv4"])  # never frozen


def test_freeze_needs_its_epochs_and_real_layer_names_checked_with_the_config(small_data):
    with pytest.raises(ConfigError, match="train.freeze .* and train.freeze_epochs .* go together"):
        tiny_config(small_data, "train.freeze=[conv1]")
    with pytest.raises(ConfigError, match=r"train.freeze: no layers named \['conv9'\]"):
        tiny_config(small_data, "train.freeze=[conv9]", "train.freeze_epochs=1")
    with pytest.raises(ConfigError, match=r"train.freeze: no layers named \['conv3'\] .* conv2, conv4,"):
        tiny_config(small_data, "train.freeze=[conv3]", "train.freeze_epochs=1", "model.remove_conv=conv3")


def test_a_missing_source_run_is_named_before_any_work(small_data, tmp_path):
    with pytest.raises(DataError, match=f"model.init_from: {tmp_path}/none.keras does not exist"):
        tiny_config(small_data, f"model.init_from={tmp_path}/none.keras")
