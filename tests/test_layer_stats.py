"""Per-layer statistics (layer_stats.py) against direct computations on a tiny model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet.config import WEIGHTED_LAYERS
from alexnet.model import build_alexnet
from alexnet.training.driver import build_model
from alexnet.training.layer_stats import LayerProbe, gain_spread, lrn_gain_spreads
from helpers import tiny_config


def test_statistics_match_the_layers_outputs_and_a_silenced_layer_reads_dead(small_data):
    model = build_model(tiny_config(small_data), 10, tf.distribute.get_strategy())
    fc7 = model.get_layer("fc7")
    fc7.set_weights([np.zeros_like(w) for w in fc7.get_weights()])  # fc7 outputs ReLU(0) = 0 for every image
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (6, 67, 67, 3), dtype=np.uint8), rng.integers(0, 10, 6)

    stats = LayerProbe(model)(images, labels)

    assert set(stats) == {f"layers/{n}/{s}" for n in WEIGHTED_LAYERS for s in
                          ("activation_rms", "image_spread", "dead_fraction", "gradient_norm", "weight_norm")} | {
                          "layers/lrn1/gain_spread", "layers/lrn2/gain_spread"}
    conv5 = np.asarray(keras.Model(model.input, model.get_layer("conv5").output)(images, training=False))
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


# ----- local response normalisation: a normalisation at every input scale -----


def demo_crops(small_data, count=16):
    """The evaluation crops of `count` real images of the demo set, at the paper's 227 pixels."""
    from alexnet.config import load_config
    from alexnet.data.pipeline import make_dataset

    data = load_config(None, [f"data.dir={small_data}"]).data
    return next(iter(make_dataset(data, "val", 227, count)))[0]


def test_lrn_sums_its_squares_in_the_papers_units_whatever_the_input_scale():
    """With He-normal weights (zero biases) every layer up to lrn2 is homogeneous, so a network fed inputs
    scaled by s must give s times the unscaled network's LRN outputs: LRN at alpha / s^2."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 67, 67, 3), dtype=np.uint8)
    outputs = {}
    for scale in (1.0, 1 / 64):
        keras.backend.clear_session()
        model = build_alexnet("paper", num_classes=5, image_size=67, width=0.25, init="he_normal",
                              input_scale=scale, seed=3)
        outputs[scale] = keras.Model(model.input, model.get_layer("lrn2").output)(images, training=False)
    np.testing.assert_allclose(np.asarray(outputs[1 / 64]) * 64, np.asarray(outputs[1.0]), rtol=2e-4, atol=1e-5)


@pytest.mark.slow
def test_lrn_gain_spread_at_the_demo_and_the_paper_config_on_real_images(small_data):
    """How much LRN's gain varies on demo images, untrained: the paper's set-up (N(0, 0.01), 0-255 inputs), the
    demo's (He-normal, inputs / 64), and the demo's with two wrong scales: the paper's alpha on its activations
    (the constant gain LRN was before it took any scale) and the input's scale alone (He-normal's 7x larger
    first activations left in, where LRN normalises far harder than the paper's)."""
    images = demo_crops(small_data)
    spreads = {}
    for name, init, scale in (("paper", "paper", 1.0), ("demo", "he_normal", 1 / 64)):
        keras.backend.clear_session()
        model = build_alexnet("paper", num_classes=10, init=init, input_scale=scale, seed=0)
        spreads[name] = lrn_gain_spreads(model, images)
        if name == "demo":
            for label, activation_scale in (("alpha unscaled", 1.0), ("input scale only", scale)):
                for layer in ("lrn1", "lrn2"):
                    model.get_layer(layer).activation_scale = activation_scale
                spreads[label] = lrn_gain_spreads(model, images)
    # Measured on 16 demo images: paper 2.2% / 0.18%, demo 2.3% / 0.12%, alpha unscaled 0.034% / 0.016%,
    # the input's scale alone 40% / 8.0%.
    assert 0.01 < spreads["paper"]["lrn1"] < 0.05 and 0.01 < spreads["demo"]["lrn1"] < 0.05
    assert 0.5 < spreads["demo"]["lrn2"] / spreads["paper"]["lrn2"] < 2
    assert spreads["alpha unscaled"]["lrn1"] < 0.001 and spreads["alpha unscaled"]["lrn2"] < 0.001
    assert spreads["input scale only"]["lrn1"] > 0.2


def test_gain_spread_reads_a_constant_gain_as_zero_and_the_probe_reports_it(small_data):
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 8))
    assert gain_spread(x, 0.595 * x) == pytest.approx(0.0, abs=1e-12)
    assert gain_spread(x, x / (1 + np.abs(x))) > 0.1
    model = build_model(tiny_config(small_data), 10, tf.distribute.get_strategy())
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (6, 67, 67, 3), dtype=np.uint8), rng.integers(0, 10, 6)
    stats = LayerProbe(model)(images, labels)
    assert stats["layers/lrn1/gain_spread"] == pytest.approx(lrn_gain_spreads(model, images)["lrn1"], rel=1e-5)
    assert stats["layers/lrn1/gain_spread"] > 0.01
