"""The network: parameter counts, shapes, the paper's LRN, colour noise and initialisation."""

import keras
import numpy as np
import pytest
from keras import ops

from alexnet.errors import ConfigError
from alexnet.model import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    LocalResponseNormalization,
    PCAColourNoise,
    Standardize,
    build_alexnet,
    lrn_reference_ops,
)

PAPER_SHAPES = {
    "conv1": (55, 55, 96), "pool1": (27, 27, 96), "conv2": (27, 27, 256), "pool2": (13, 13, 256),
    "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256), "pool5": (6, 6, 256),
    "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, params", [("paper", 62_378_344), ("paper_grouped", 60_965_224), ("owt", 61_100_840)]
)
def test_parameter_counts(variant, params):
    assert build_alexnet(variant).count_params() == params


@pytest.mark.slow
def test_paper_layer_names_and_shapes():
    model = build_alexnet("paper")
    for name, shape in PAPER_SHAPES.items():
        assert model.get_layer(name).output.shape[1:] == shape, name
    for name in ("lrn1", "lrn2"):
        assert model.get_layer(name).output.shape[1:] == model.get_layer(f"conv{name[-1]}").output.shape[1:]
    assert model.input.shape[1:] == (227, 227, 3) and model.input.dtype == "uint8"


@pytest.mark.slow
def test_grouped_and_owt_layouts():
    grouped = build_alexnet("paper_grouped")
    assert [grouped.get_layer(f"conv{i}").groups for i in range(1, 6)] == [1, 2, 1, 2, 2]
    owt = build_alexnet("owt")
    names = [layer.name for layer in owt.layers]
    assert "lrn1" not in names and "lrn2" not in names
    # torchvision drops the inputs of fc6 and fc7; the paper drops their outputs.
    assert names.index("dropout6") < names.index("fc6") and names.index("dropout7") < names.index("fc7")
    paper_names = [layer.name for layer in build_alexnet("paper").layers]
    assert paper_names.index("fc6") < paper_names.index("dropout6")


def test_class_count_sets_fc8_and_output_is_a_distribution():
    model = build_alexnet("paper", num_classes=7, width=1 / 16, image_size=67)
    probs = np.asarray(model(np.random.default_rng(0).integers(0, 256, (3, 67, 67, 3), dtype=np.uint8)))
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def numpy_lrn(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """b_i = a_i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a_j^2)^beta, section 3.3, channel-last."""
    channels = a.shape[-1]
    out = np.empty_like(a)
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        out[..., i] = a[..., i] / (k + alpha * np.sum(a[..., lo : hi + 1] ** 2, axis=-1)) ** beta
    return out


def test_lrn_is_the_papers_formula_including_channel_edges():
    # Large activations so the alpha term matters (with alpha not divided by n).
    a = np.random.default_rng(1).uniform(0, 300, (2, 4, 4, 9)).astype(np.float32)
    expected = numpy_lrn(a)
    assert np.abs(expected - a / 2**0.75).max() > 1.0  # the normalisation is far from the constant-k case
    np.testing.assert_allclose(np.asarray(LocalResponseNormalization()(a)), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(lrn_reference_ops(ops.convert_to_tensor(a))), expected, rtol=1e-5)


def test_fused_and_ops_lrn_agree():
    a = np.random.default_rng(2).normal(0, 50, (4, 13, 13, 256)).astype(np.float32)
    fused = np.asarray(LocalResponseNormalization()(a))
    reference = np.asarray(lrn_reference_ops(ops.convert_to_tensor(a)))
    np.testing.assert_allclose(fused, reference, rtol=1e-5, atol=1e-5)


def test_colour_noise_is_zero_at_inference():
    images = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    out = np.asarray(PCAColourNoise(0.1)(images, training=False))
    np.testing.assert_array_equal(out, images.astype(np.float32))


def test_colour_noise_statistics_in_training():
    images = np.full((4000, 2, 2, 3), 128, dtype=np.uint8)
    shift = np.asarray(PCAColourNoise(0.1, seed=4)(images, training=True)) - 128.0
    # One RGB shift per image, the same for every pixel.
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:, :1, :1, :], shift.shape), atol=1e-4)
    per_image = shift[:, 0, 0, :]
    eigvec = np.array(IMAGENET_EIGVEC)  # columns are eigenvectors
    coefficients = per_image @ eigvec  # projections onto p_i (the columns are orthonormal)
    expected_std = 0.1 * np.array(IMAGENET_EIGVAL)
    np.testing.assert_allclose(coefficients.std(axis=0), expected_std, rtol=0.10)
    np.testing.assert_allclose(coefficients.mean(axis=0), 0.0, atol=0.1 * expected_std.max())
    # The components are drawn independently of each other.
    assert abs(np.corrcoef(coefficients.T)[0, 1]) < 0.1


def test_colour_noise_differs_between_calls():
    images = np.zeros((2, 1, 1, 3), dtype=np.uint8)
    layer = PCAColourNoise(0.1, seed=5)
    assert not np.allclose(np.asarray(layer(images, training=True)), np.asarray(layer(images, training=True)))


@pytest.mark.slow
def test_paper_initialisation_statistics():
    model = build_alexnet("paper", seed=0)
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        kernel, bias = (np.asarray(w) for w in model.get_layer(name).get_weights())
        assert abs(kernel.mean()) < 1e-3, name
        assert kernel.std() == pytest.approx(0.01, rel=0.05), name
        expected_bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        np.testing.assert_array_equal(bias, expected_bias, err_msg=name)


def test_he_normal_initialisation_scales_with_fan_in():
    model = build_alexnet("paper", init="he_normal", seed=0, width=0.25)
    kernel = np.asarray(model.get_layer("fc7").kernel)
    assert kernel.std() == pytest.approx(np.sqrt(2 / kernel.shape[0]), rel=0.05)  # He et al.: sqrt(2 / fan_in)


def test_seeded_builds_are_identical():
    a = build_alexnet("paper", width=1 / 16, image_size=67, seed=3)
    b = build_alexnet("paper", width=1 / 16, image_size=67, seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    # Different layers of the same shape do not share initial values.
    conv4, conv5 = (np.asarray(a.get_layer(n).kernel).ravel()[:1000] for n in ("conv4", "conv5"))
    assert not np.allclose(conv4, conv5)


def test_mixed_precision_keeps_preprocessing_and_output_float32():
    model = build_alexnet("paper", width=1 / 16, image_size=67, dtype_policy="mixed_bfloat16")
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("standardize").compute_dtype == "float32"
    out = model(np.zeros((1, 67, 67, 3), np.uint8))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


def test_he_normal_starts_biases_at_zero():
    model = build_alexnet("paper", init="he_normal", width=1 / 16, image_size=67)
    for name in ("conv2", "fc6", "fc7"):
        np.testing.assert_array_equal(np.asarray(model.get_layer(name).bias), 0.0)


@pytest.mark.parametrize("layer", [
    LocalResponseNormalization(depth_radius=3, bias=1.5, alpha=2e-4, beta=0.5, activation_scale=0.5, name="lrn"),
    PCAColourNoise(0.2, eigval=(3.0, 2.0, 1.0), eigvec=np.eye(3)[::-1].tolist(), seed=9, name="noise"),
    Standardize(mean=(1.0, 2.0, 3.0), scale=0.5, name="standardize"),
    Standardize(scale=0.25, per_image=True, name="centre_each_image"),
])
def test_custom_layers_round_trip_through_their_config(layer):
    images = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = images if not isinstance(layer, LocalResponseNormalization) else images.astype(np.float32)
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(layer(x)), rtol=1e-6)
    # The values that matter, not only equal dicts: a layer with other arguments computes something else.
    assert {k: v for k, v in clone.get_config().items() if k not in ("name", "dtype", "trainable")} != {
        k: v for k, v in type(layer)().get_config().items() if k not in ("name", "dtype", "trainable")}


# Outputs of a seeded tiny model on a fixed input, stored when the architecture and initialisation were
# checked against the paper (again when every layer got its own seed stream, alexnet/seeds.py, and when LRN
# began to sum its squares in the paper's units, alpha / scale^2 with the scale of the inputs and of the
# He-normal weights): they change if either drifts (layer order, widths, init, bias constants, the seeding
# rule, LRN's units).
EXPECTED_OUTPUTS = {
    ("he_normal", 1 / 64): [[0.330681, 0.415458, 0.052974, 0.200887], [0.20381, 0.500078, 0.069828, 0.226283],
                            [0.184344, 0.516538, 0.081768, 0.21735]],
    ("paper", 1.0): [[0.234444, 0.174065, 0.248764, 0.342726]] * 3,  # biases of 1 dominate the tiny net
}


@pytest.mark.parametrize("init, scale", list(EXPECTED_OUTPUTS))
def test_seeded_tiny_model_gives_its_stored_output(init, scale):
    images = (np.arange(3 * 67 * 67 * 3).reshape(3, 67, 67, 3) * 7 % 256).astype(np.uint8)
    model = build_alexnet("paper", num_classes=4, image_size=67, width=1 / 16, init=init, input_scale=scale, seed=11)
    np.testing.assert_allclose(np.asarray(model(images, training=False)), EXPECTED_OUTPUTS[init, scale], atol=2e-5)


# ----- the switches `make claims` turns: each changes exactly what it says -----

HIDDEN = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")


@pytest.mark.slow
def test_tanh_replaces_every_hidden_relu_and_nothing_else():
    model = build_alexnet("paper", activation="tanh")
    assert [model.get_layer(n).activation.__name__ for n in HIDDEN] == ["tanh"] * 7
    assert model.get_layer("fc8").activation.__name__ == "linear"
    assert model.count_params() == 62_378_344


@pytest.mark.slow
def test_lrn_can_be_switched_off_for_the_paper_and_on_for_owt():
    names = {layer.name for layer in build_alexnet("paper", lrn=False).layers}
    assert not {"lrn1", "lrn2"} & names and build_alexnet("paper", lrn=False).count_params() == 62_378_344
    owt = build_alexnet("owt", lrn=True)
    assert isinstance(owt.get_layer("lrn1"), LocalResponseNormalization) and owt.count_params() == 61_100_840


@pytest.mark.slow
def test_non_overlapping_pooling_keeps_every_shape_and_parameter():
    model = build_alexnet("paper", pool_size=2)
    for name in ("pool1", "pool2", "pool5"):
        layer = model.get_layer(name)
        assert (layer.pool_size, layer.strides) == ((2, 2), (2, 2))
    for name, shape in PAPER_SHAPES.items():
        assert model.get_layer(name).output.shape[1:] == shape, name
    assert model.count_params() == 62_378_344


# conv3: 3*3*256*384 + 384 = 885,120; conv4: 3*3*384*384 + 384 = 1,327,488 (paper widths, one tower).
CONV3, CONV4 = 885_120, 1_327_488


@pytest.mark.slow
def test_removing_conv3_feeds_conv2s_maps_to_conv4():
    model = build_alexnet("paper", remove_conv="conv3")
    assert "conv3" not in {layer.name for layer in model.layers}
    assert model.get_layer("conv4").kernel.shape == (3, 3, 256, 384)  # conv2's 256 maps in
    assert model.count_params() == 62_378_344 - CONV3 - CONV4 + CONV3  # conv4 now the size conv3 was


@pytest.mark.slow
def test_removing_conv4_feeds_conv3s_maps_to_conv5():
    model = build_alexnet("paper", remove_conv="conv4")
    assert "conv4" not in {layer.name for layer in model.layers}
    assert model.get_layer("conv5").kernel.shape == (3, 3, 384, 256)  # conv3 has conv4's 384 maps
    assert model.count_params() == 62_378_344 - CONV4  # the config refuses other layers (test_config)


def test_zero_fc8_starts_with_uniform_predictions_and_leaves_the_rest_alone():
    images = np.random.default_rng(0).integers(0, 256, (2, 67, 67, 3), dtype=np.uint8)
    zero = build_alexnet("paper", num_classes=5, image_size=67, width=1 / 16, init="he_normal", seed=1, zero_fc8=True)
    plain = build_alexnet("paper", num_classes=5, image_size=67, width=1 / 16, init="he_normal", seed=1)
    np.testing.assert_array_equal(np.asarray(zero.get_layer("fc8").kernel), 0.0)
    np.testing.assert_allclose(np.asarray(zero(images)), 0.2, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(zero.get_layer("fc7").kernel), np.asarray(plain.get_layer("fc7").kernel))


def test_per_image_centring_removes_each_images_own_mean_colour():
    images = np.random.default_rng(0).integers(0, 256, (3, 6, 5, 3), dtype=np.uint8)
    out = np.asarray(Standardize(scale=0.5, per_image=True)(images))
    expected = (images - images.mean(axis=(1, 2), keepdims=True)) * 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-4)


def test_per_image_centring_keeps_the_colour_noise_it_follows():
    """centre=image subtracts the mean of the pixels before the noise: the mean of the noisy image would hold
    the noise (one colour added to every pixel) and cancel it exactly."""
    model = build_alexnet("paper", num_classes=5, image_size=67, width=1 / 16, centre="image", colour_noise=0.5,
                          seed=1)
    standardized = keras.Model(model.input, model.get_layer("standardize").output)
    images = np.random.default_rng(0).integers(0, 256, (4, 67, 67, 3), dtype=np.uint8)
    noisy, clean = (np.asarray(standardized(images, training=t)) for t in (True, False))
    shift = (noisy - clean).reshape(4, -1, 3)
    np.testing.assert_allclose(shift, shift[:, :1, :].repeat(shift.shape[1], axis=1), atol=1e-4)  # one colour each
    assert np.abs(shift[:, 0]).max() > 0.5  # the noise reaches the network (it was cancelled: 0)


# ----- randomness: every random layer draws from its own stream of the run's seed -----

SWITCHES = [{}, {"lrn": False}, {"pool_size": 2}, {"remove_conv": "conv3"}, {"activation": "tanh"}]


def random_layers(model) -> dict:
    """{name: layer} of the model's layers that draw random numbers (they own a Keras seed generator)."""
    return {layer.name: layer for layer in model.layers if hasattr(layer, "seed_generator")}


def dropout_masks(model, units: int) -> dict:
    """{name: boolean mask of kept units} of one training step of each dropout layer on ones((16, units))."""
    ones = np.ones((16, units), np.float32)
    return {name: np.asarray(layer(ones, training=True)) != 0
            for name, layer in random_layers(model).items() if name.startswith("dropout")}


@pytest.mark.parametrize("variant", ["paper", "paper_grouped", "owt"])
@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "paper")
def test_no_two_random_layers_draw_the_same_numbers(variant, switches):
    model = build_alexnet(variant, num_classes=5, image_size=67, width=1 / 16, seed=0, **switches)
    layers_ = random_layers(model)
    assert set(layers_) == {"colour_noise", "dropout6", "dropout7"}
    states = {name: tuple(np.asarray(layer.seed_generator.state)) for name, layer in layers_.items()}
    assert len(set(states.values())) == len(states), states
    units = model.get_layer("fc7").units if variant != "owt" else model.get_layer("fc6").kernel.shape[0]
    masks = dropout_masks(model, units)
    agreement = np.mean(masks["dropout6"] == masks["dropout7"])
    assert 0.45 < agreement < 0.55, agreement  # independent masks at rate 0.5 agree on half the units
    assert 0.45 < masks["dropout6"].mean() < 0.55


def test_the_same_seed_draws_the_same_masks_and_noise_and_another_seed_does_not():
    def draws(seed):
        model = build_alexnet("paper", num_classes=5, image_size=67, width=1 / 16, seed=seed)
        noise = np.asarray(model.get_layer("colour_noise")(np.zeros((8, 2, 2, 3), np.uint8), training=True))
        return dropout_masks(model, 256), noise

    (masks, noise), (again, noise_again), (other, _) = draws(3), draws(3), draws(4)
    for name in masks:
        np.testing.assert_array_equal(masks[name], again[name])
        assert np.mean(masks[name] == other[name]) < 0.6
    np.testing.assert_array_equal(noise, noise_again)


def test_the_model_config_and_the_builder_speak_one_vocabulary():
    import dataclasses
    import inspect

    from alexnet.config import ModelConfig
    from alexnet.model import BUILD_ONLY, CONFIG_ONLY

    parameters = inspect.signature(build_alexnet).parameters
    fields = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    assert set(parameters) - set(BUILD_ONLY) == set(fields) - set(CONFIG_ONLY)
    # The same defaults, but num_classes: the config's 0 means "the data set's count".
    assert {name: parameters[name].default for name in fields if name not in (*CONFIG_ONLY, "num_classes")} == {
        name: default for name, default in fields.items() if name not in (*CONFIG_ONLY, "num_classes")}
    import alexnet

    with pytest.raises(ConfigError, match="model.lrn: 'sometimes' is not one of 'variant', True, False"):
        alexnet.AlexNet(lrn="sometimes")  # the library's constructor checks by the config's rule


def test_a_seeded_training_repeats_step_for_step_with_dropout_and_colour_noise_on():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 67, 67, 3), dtype=np.uint8), rng.integers(0, 5, 16)

    def losses(seed):
        keras.backend.clear_session()
        model = build_alexnet("paper", num_classes=5, image_size=67, width=1 / 16, init="he_normal",
                              input_scale=1 / 64, seed=seed)
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
        return model.fit(images, labels, batch_size=8, epochs=3, shuffle=False, verbose=0).history["loss"]

    first = losses(7)
    assert losses(7) == first  # every random layer's stream restarts with the seed
    assert losses(8) != first
