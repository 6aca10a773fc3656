"""Per-layer statistics (layer_stats.py) against direct computations on a tiny model."""

import keras
import numpy as np
import tensorflow as tf

from alexnet.config import WEIGHTED_LAYERS
from alexnet.training.driver import build_model
from alexnet.training.layer_stats import LayerProbe
from helpers import tiny_config


def test_statistics_match_the_layers_outputs_and_a_silenced_layer_reads_dead(small_data):
    model = build_model(tiny_config(small_data), 10, tf.distribute.get_strategy())
    fc7 = model.get_layer("fc7")
    fc7.set_weights([np.zeros_like(w) for w in fc7.get_weights()])  # fc7 outputs ReLU(0) = 0 for every image
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (6, 67, 67, 3), dtype=np.uint8), rng.integers(0, 10, 6)

    stats = LayerProbe(model)(images, labels)

    assert set(stats) == {f"layers/{n}/{s}" for n in WEIGHTED_LAYERS for s in
                          ("activation_rms", "image_spread", "dead_fraction", "gradient_norm", "weight_norm")}
    conv5 = np.asarray(keras.Model(model.inputs, model.get_layer("conv5").output)(images, training=False))
    units = conv5.reshape(6, -1)
    rms = np.sqrt(np.mean(units**2))
    np.testing.assert_allclose(stats["layers/conv5/activation_rms"], rms, rtol=1e-5)
    np.testing.assert_allclose(stats["layers/conv5/image_spread"], units.std(axis=0).mean() / rms, rtol=1e-4)
    np.testing.assert_allclose(stats["layers/conv5/dead_fraction"], np.mean(np.all(units <= 0, axis=0)))
    np.testing.assert_allclose(stats["layers/conv1/weight_norm"],
                               np.linalg.norm(model.get_layer("conv1").get_weights()[0]), rtol=1e-5)
    assert (stats["layers/fc7/activation_rms"], stats["layers/fc7/dead_fraction"]) == (0.0, 1.0)
    # A silent fc7 gives fc8's kernel nothing to learn from and passes no gradient down (ReLU'(0) = 0): the
    # end state of a flat start, where every kernel's gradient vanishes.
    assert all(stats[f"layers/{n}/gradient_norm"] == 0.0 for n in WEIGHTED_LAYERS)
    assert stats["layers/conv5/gradient_norm"] == 0.0 < stats["layers/conv5/activation_rms"]
