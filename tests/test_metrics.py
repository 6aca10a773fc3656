"""The training loss with label smoothing, against the formula written out by hand; the top-k accuracies
that count ties and non-finite outputs against the model."""


import keras
import numpy as np
import pytest

from alexnet.metrics import TOP1, TOP5, SmoothedSparseCrossentropy, compiled_metrics, training_loss
from alexnet.rundir import RunDir
from alexnet.training.checkpoints import BestModel

PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
LABELS = np.array([1, 2])


def smoothed_by_hand(probabilities, labels, smoothing):
    """Mean over images of -sum_j t_j log p_j with t = (1 - s) one_hot + s / classes."""
    classes = probabilities.shape[1]
    targets = (1 - smoothing) * np.eye(classes)[labels] + smoothing / classes
    return float(np.mean(-np.sum(targets * np.log(probabilities), axis=1)))


def test_smoothing_moves_the_target_towards_the_uniform_guess():
    for smoothing in (0.1, 0.5):
        got = float(SmoothedSparseCrossentropy(smoothing)(LABELS[:, None], PROBABILITIES))
        np.testing.assert_allclose(got, smoothed_by_hand(PROBABILITIES, LABELS, smoothing), rtol=1e-5)
    # The smoothed loss of a confident wrong answer (image 0: 0.2 on its class) differs from the plain one.
    assert abs(smoothed_by_hand(PROBABILITIES, LABELS, 0.1) - smoothed_by_hand(PROBABILITIES, LABELS, 0.0)) > 0.05


def test_no_smoothing_is_keras_sparse_cross_entropy():
    assert training_loss(0.0) == "sparse_categorical_crossentropy"
    plain = float(keras.losses.SparseCategoricalCrossentropy()(LABELS, PROBABILITIES))
    np.testing.assert_allclose(plain, smoothed_by_hand(PROBABILITIES, LABELS, 0.0), rtol=1e-5)


def test_a_model_compiled_with_smoothing_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss=training_loss(0.2))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.loss, SmoothedSparseCrossentropy) and loaded.loss.smoothing == 0.2


def test_the_compiled_accuracies_count_ties_and_nan_as_misses_where_keras_counts_them_as_hits():
    uniform = np.full((4, 10), 0.1, np.float32)
    labels = np.array([0, 3, 5, 9])
    top1, top5 = compiled_metrics()
    assert (top1.name, top5.name) == (TOP1, TOP5)
    top1.update_state(labels, uniform)
    top5.update_state(labels, uniform)
    assert float(top1.result()) == 0.0 and float(top5.result()) == 0.0
    keras_top5 = keras.metrics.SparseTopKCategoricalAccuracy(k=5)
    keras_top5.update_state(labels, uniform)
    assert float(keras_top5.result()) == 1.0  # the flattering count this project does not use
    top1.reset_state()
    top1.update_state(np.array([0, 1]), np.array([[np.nan] * 3, [0.1, 0.8, 0.1]], np.float32))
    assert float(top1.result()) == 0.5
    top5.reset_state()
    top5.update_state(labels, np.eye(10, dtype=np.float32)[labels])  # clear winners: all hits
    assert float(top5.result()) == 1.0


def test_a_model_compiled_with_the_accuracies_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=compiled_metrics())
    model.fit(np.ones((4, 4)), np.array([0, 1, 2, 0]), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    logs = loaded.evaluate(np.ones((4, 4)), np.array([0, 1, 2, 0]), verbose=0, return_dict=True)
    assert set(logs) >= {TOP1, TOP5}


def test_an_epoch_whose_loss_is_not_finite_never_becomes_the_best_model(tmp_path):
    """The divergence guard stops on the training loss; a validation loss that is not finite reaches the choice."""
    best = BestModel(RunDir(tmp_path))
    scores = {"top1": 0.5, "top5": 0.9, "val_top1": 0.5, "val_top5": 0.9}  # Keras's logs hold accuracies
    first = best.choose(0, {"loss": 1.0, "val_loss": 2.0, **scores})
    assert (first.epoch, first.val_top1_error, first.val_top5_error) == (1, 0.5, pytest.approx(0.1))
    assert best.choose(1, {"loss": 1.0, "val_loss": float("nan"), **scores, "val_top1": 1.0}) is None
    assert best.choose(2, {"loss": float("inf"), "val_loss": 1.0, **scores, "val_top1": 1.0}) is None
    assert best.choose(3, {"loss": 1.0, "val_loss": 1.0, **scores}) is None  # only a lower error is better
    later = best.choose(4, {"loss": 1.0, "val_loss": 1.0, **scores, "val_top1": 0.75})
    assert (later.epoch, later.val_top1_error) == (5, 0.25)
