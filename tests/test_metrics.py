"""The training loss with label smoothing, against the formula written out by hand."""

import keras
import numpy as np

from alexnet.metrics import SmoothedSparseCrossentropy, training_loss

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
