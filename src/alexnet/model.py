"""AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012) as a Keras 3 functional model.

The model takes uint8 images (N, 227, 227, 3) and returns class probabilities. Conversion to float, the
PCA colour noise (training only) and mean subtraction happen inside it, so the accelerator receives
4x fewer bytes and an exported model takes raw pixels. Apart from the fused-LRN dispatch on TensorFlow,
this module uses keras and keras.ops only, so it also runs under KERAS_BACKEND=jax.

Example:
    model = build_alexnet("paper", num_classes=1000)
    probs = model(np.zeros((1, 227, 227, 3), np.uint8))
"""

from __future__ import annotations

import json

import keras
from keras import layers, ops

from alexnet.errors import DataError
from alexnet.random_streams import ReplicaDropout, ReplicaSeedGenerator
from alexnet.seeds import stream_seed

# Per-channel RGB mean of ImageNet training pixels, 0-255 scale (the 0.485/0.456/0.406 of torchvision), and
# torchvision's standard deviations of [0, 1] pixels.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# Eigenvalues and eigenvectors of the 3x3 RGB covariance of ImageNet pixels (section 4.1), for noise added
# to 0-255 pixels: the eigenvalues of the [0, 1]-pixel covariance times 255 (fb.resnet.torch's, as in
# MXNet/GluonCV; the paper does not state its scale). Column j of IMAGENET_EIGVEC is eigenvector j (the
# same layout as fb.resnet.torch's Lighting transform).
IMAGENET_EIGVAL = (55.46, 4.794, 1.148)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)

# Section 3.3: k=2, n=5, alpha=1e-4, beta=0.75, alpha NOT divided by n (unlike Caffe/PyTorch). The constants
# belong to the paper's network (0-255 pixels minus the mean, weights N(0, 0.01)): LocalResponseNormalization
# takes how much larger a network's activations are (lrn_activation_scales) and sums its squares in those units.
LRN_DEPTH_RADIUS, LRN_BIAS, LRN_ALPHA, LRN_BETA = 2, 2.0, 1e-4, 0.75
PAPER_WEIGHT_STD = 0.01  # section 5: every layer's weights start N(0, 0.01)

# Conv widths, groups (2 = the paper's split over two GPUs) and whether LRN follows conv1/conv2.
VARIANTS = {
    # Section 3.5 as one tower: 62,378,344 parameters at 1000 classes.
    "paper": {"filters": (96, 256, 384, 384, 256), "groups": (1, 1, 1, 1, 1), "lrn": True},
    # conv2, conv4, conv5 see only their own GPU's half of the maps (Figure 2): 60,965,224 parameters.
    "paper_grouped": {"filters": (96, 256, 384, 384, 256), "groups": (1, 2, 1, 2, 2), "lrn": True},
    # torchvision's "one weird trick" layout: no LRN, dropout before fc6/fc7: 61,100,840 parameters.
    "owt": {"filters": (64, 192, 384, 256, 256), "groups": (1, 1, 1, 1, 1), "lrn": False},
}
FC_UNITS = 4096  # fc6 and fc7 (section 3.5)

# The networks other frameworks trained, as they ran them (model.layout; the variant and input size each fixes are
# in alexnet/config.py's LAYOUT_KEYS; alexnet/pretrained.py reads their files). torchvision's alexnet: the owt
# layout at 224 with conv1 padded by 2 (55x55 either way), inputs (pixel / 255 - mean) / std in RGB. BVLC's
# bvlc_alexnet (Caffe): the paper's two towers at 227, BGR inputs minus Caffe's mean pixel, and Caffe's LRN:
# k = 1 and alpha divided by n (alpha = 1e-4 in its prototxt).
LAYOUTS = {
    "project": {"conv1_padding": 0, "mean": None, "scale": None, "bgr": False, "lrn_bias": LRN_BIAS,
                "lrn_alpha": LRN_ALPHA},
    "torchvision": {"conv1_padding": 2, "mean": IMAGENET_MEAN_RGB,
                    "scale": tuple(1 / (255 * s) for s in IMAGENET_STD_RGB), "bgr": False, "lrn_bias": LRN_BIAS,
                    "lrn_alpha": LRN_ALPHA},
    "caffe": {"conv1_padding": 0, "mean": (122.67891434, 116.66876762, 104.00698793), "scale": 1.0, "bgr": True,
              "lrn_bias": 1.0, "lrn_alpha": 1e-4 / (2 * LRN_DEPTH_RADIUS + 1)},
}
# ModelConfig fields that are not build_alexnet arguments, and build_alexnet arguments that come from elsewhere.
CONFIG_ONLY = ("init_from", "arch")
BUILD_ONLY = ("dtype_policy", "seed")


def lrn_reference_ops(x, depth_radius=LRN_DEPTH_RADIUS, bias=LRN_BIAS, alpha=LRN_ALPHA, beta=LRN_BETA):
    """LRN in keras.ops: b = a / (bias + alpha * sum of a^2 over 2*depth_radius+1 channels)^beta."""
    channels = x.shape[-1]
    padded = ops.pad(ops.square(x), [[0, 0], [0, 0], [0, 0], [depth_radius, depth_radius]])
    window = sum(padded[..., i : i + channels] for i in range(2 * depth_radius + 1))
    return x / ops.power(bias + alpha * window, beta)


@keras.saving.register_keras_serializable(package="alexnet")
class LocalResponseNormalization(layers.Layer):
    """The paper's LRN (section 3.3); the fused TensorFlow kernel on that backend, keras.ops elsewhere.

    activation_scale: how many times the paper's network's activations this network's are here, at the start
    (lrn_activation_scales). LRN is not scale-invariant: with the paper's alpha on activations of about 1
    the divisor is (2 + ~5e-4)^0.75 everywhere, a constant gain that normalises nothing, and on activations
    7x the paper's it normalises far harder than the paper's did. So the sum of squares is taken in the
    paper's units, alpha / scale^2 on this network's activations: for a ReLU network with zero biases,
    b(c * a) = c * b(a), the paper's layer seen through the scale.
    """

    def __init__(self, depth_radius=LRN_DEPTH_RADIUS, bias=LRN_BIAS, alpha=LRN_ALPHA, beta=LRN_BETA,
                 activation_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta
        self.activation_scale = activation_scale

    def call(self, x):
        # Sums of squares in float32: bfloat16 would lose them, and the fused kernel wants float32.
        x32 = ops.cast(x, "float32")
        alpha = self.alpha / self.activation_scale**2
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # The fused kernel: 1.55x faster training than the ops version on CPU.

            y = tf.nn.local_response_normalization(
                x32, depth_radius=self.depth_radius, bias=self.bias, alpha=alpha, beta=self.beta
            )
        else:
            y = lrn_reference_ops(x32, self.depth_radius, self.bias, alpha, self.beta)
        return ops.cast(y, x.dtype)

    def get_config(self):
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta, "activation_scale": self.activation_scale}


def lrn_activation_scales(input_scale: float, init: str, conv1_fan_in: int, conv2_fan_in: int) -> tuple[float, float]:
    """How many times the paper's network's activations lrn1's and lrn2's inputs are at the start: the input
    scale, times for He-normal weights each convolution's standard deviation over the paper's 0.01
    (sqrt(2 / fan_in) / 0.01: 7.4 for conv1, 2.9 for the paper's conv2). Biases aside, a ReLU network's
    activations scale with its inputs and weights, so at the start LRN normalises as much as the paper's
    (tests/test_layer_stats.py holds the spread at the start; CHANGELOG.md, 2026-12-04, how it was found)."""
    def gain(fan_in):
        return 1.0 if init == "paper" else (2 / fan_in) ** 0.5 / PAPER_WEIGHT_STD

    return input_scale * gain(conv1_fan_in), input_scale * gain(conv1_fan_in) * gain(conv2_fan_in)


@keras.saving.register_keras_serializable(package="alexnet")
class PCAColourNoise(layers.Layer):
    """Casts uint8 images to float32 and, in training, adds sum_i p_i * alpha_i * lambda_i to every pixel.

    alpha_i ~ N(0, stddev) is drawn once per image (section 4.1); p_i, lambda_i are the eigenvectors
    (columns of eigvec) and eigenvalues of the RGB pixel covariance, the eigenvalues in IMAGENET_EIGVAL's
    convention ([0, 1]-pixel covariance times 255). Inference returns the cast input.
    """

    def __init__(self, stddev=0.1, eigval=IMAGENET_EIGVAL, eigvec=IMAGENET_EIGVEC, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev, self.eigval, self.eigvec, self.seed = stddev, tuple(eigval), tuple(map(tuple, eigvec)), seed
        self.seed_generator = ReplicaSeedGenerator(seed)  # its own draws on every replica and at every step

    def call(self, images, training=False):
        x = ops.cast(images, "float32")
        if not training or self.stddev == 0:
            return x
        alpha = keras.random.normal((ops.shape(x)[0], 3), stddev=self.stddev, seed=self.seed_generator)
        # shift[n, c] = sum_j eigvec[c, j] * alpha[n, j] * eigval[j]
        eigval, eigvec = ops.convert_to_tensor(self.eigval), ops.convert_to_tensor(self.eigvec)
        shift = ops.matmul(alpha * eigval, ops.transpose(eigvec))
        return x + shift[:, None, None, :]

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "eigval": self.eigval,
                "eigvec": self.eigvec, "seed": self.seed}


@keras.saving.register_keras_serializable(package="alexnet")
class Standardize(layers.Layer):
    """(pixels - mean) * scale, with a per-channel mean colour and a scale that may be per channel too; bgr
    reverses the channels afterwards (for a network trained on BGR inputs, Caffe's).

    The paper subtracts the training set's mean image (section 2); this subtracts its mean colour, one value
    per channel (a deliberate deviation, as torchvision and Caffe's later models do: it keeps the model's
    input independent of the crop position and needs no mean image stored with the model). per_image
    subtracts each image's own mean colour instead (a deviation for small objects on backgrounds of varying
    colour, see ModelConfig.centre), taken from `pixels`, the image before the colour noise: the mean of
    the noisy image would remove the noise it holds, which is a shift of every pixel by one colour.
    """

    def __init__(self, mean=IMAGENET_MEAN_RGB, scale=1.0, per_image=False, bgr=False, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.per_image, self.bgr = tuple(mean), per_image, bgr
        self.scale = tuple(scale) if isinstance(scale, (list, tuple)) else scale

    def call(self, x, pixels=None):
        x = ops.cast(x, "float32")
        if self.per_image:
            mean = ops.mean(ops.cast(x if pixels is None else pixels, "float32"), axis=(1, 2), keepdims=True)
        else:
            mean = ops.convert_to_tensor(self.mean)
        x = (x - mean) * ops.convert_to_tensor(self.scale, "float32")
        return ops.flip(x, axis=-1) if self.bgr else x

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "scale": self.scale, "per_image": self.per_image,
                "bgr": self.bgr}


def load_colour_stats(path: str | None) -> dict:
    """RGB mean, eigenvalues and eigenvectors: ImageNet's (path None), or the JSON written by `make prepare`."""
    if not path:
        return {"mean": IMAGENET_MEAN_RGB, "eigval": IMAGENET_EIGVAL, "eigvec": IMAGENET_EIGVEC}
    try:
        with open(path) as f:
            stats = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"model.colour_stats: cannot read {path} ({e}); write it with `make prepare "
                        f"ARGS=\"data.colour_stats=true\"`") from e
    missing = {"mean", "eigval", "eigvec"} - set(stats)
    if missing:
        raise DataError(f"colour stats file {path} lacks {sorted(missing)}; "
                        f"re-run `make prepare` with data.colour_stats=true")
    return {k: stats[k] for k in ("mean", "eigval", "eigvec")}


def _kernel_initializer(init: str, seed: int | None):
    """Weights N(0, 0.01) as in section 5, or He-normal; each layer gets its own seed stream."""
    if init == "paper":
        return keras.initializers.RandomNormal(0.0, PAPER_WEIGHT_STD, seed=seed)
    return keras.initializers.HeNormal(seed=seed)


def prepared_input(image_size: int, centre: str, input_scale: float, colour_noise: float,
                   colour_stats: str | None, seed: int | None, layout: str = "project"):
    """(the uint8 input, its prepared float32 tensor): colour noise in training (section 4.1), then the mean
    subtracted and the scale applied (section 2), as model.layout's framework did. Every architecture of
    model.arch starts so."""
    stats, convention = load_colour_stats(colour_stats), LAYOUTS[layout]
    images = keras.Input((image_size, image_size, 3), dtype="uint8", name="images")
    x = PCAColourNoise(colour_noise, stats["eigval"], stats["eigvec"], seed=stream_seed(seed, "colour_noise"),
                       name="colour_noise", dtype="float32")(images)
    standardize = Standardize(convention["mean"] or stats["mean"], convention["scale"] or input_scale,
                              centre == "image", convention["bgr"], name="standardize", dtype="float32")
    return images, standardize(x, pixels=images) if centre == "image" else standardize(x)


def build_alexnet(
    variant: str = "paper",
    num_classes: int = 1000,
    image_size: int = 227,
    width: float = 1.0,
    init: str = "paper",
    zero_fc8: bool = False,
    dropout: float = 0.5,
    centre: str = "dataset",
    input_scale: float = 1.0,
    colour_noise: float = 0.1,
    colour_stats: str | None = None,
    activation: str = "relu",
    lrn: str | bool = "variant",
    pool_size: int = 3,
    remove_conv: str | None = None,
    layout: str = "project",
    dtype_policy: str = "float32",
    seed: int | None = None,
) -> keras.Model:
    """Builds AlexNet with layers named as in the paper (conv1..conv5, lrn1, lrn2, pool1, pool2, pool5, fc6..fc8).

    The arguments are ModelConfig's keys with the same names, values and meanings (alexnet/config.py says
    what each does and where the paper has it), checked by the config (load_config, or alexnet.AlexNet's
    check of its arguments), which this trusts; num_classes is the count itself (the config's 0 means "from
    the data set"). width scales every conv and fc layer (1.0 = the
    paper); tests build tiny networks with it. dtype_policy is applied per layer ("mixed_bfloat16" etc.);
    the pre-processing and the softmax stay float32. seed: every layer's initialisation, each dropout layer
    and the colour noise draw from their own stream of it (alexnet/seeds.py).
    """
    spec, convention = VARIANTS[variant], LAYOUTS[layout]
    lrn = spec["lrn"] if lrn == "variant" else lrn
    filters = [max(1, round(f * width)) for f in spec["filters"]]
    # Grouped convolutions need even widths.
    filters = [f + f % 2 if g == 2 else f for f, g in zip(filters, spec["groups"], strict=True)]
    fc_units = max(1, round(FC_UNITS * width))

    def kernel_init(name):
        if zero_fc8 and name == "fc8":
            return "zeros"
        return _kernel_initializer(init, stream_seed(seed, f"init/{name}"))
    # Biases 1 in conv2, conv4, conv5, fc6, fc7 "to accelerate the early stages of learning" (section 5);
    # he_normal starts every bias at 0, as He et al. do.
    ones_bias = {"conv2", "conv4", "conv5", "fc6", "fc7"} if init == "paper" else set()

    def bias(name):
        return "ones" if name in ones_bias else "zeros"

    def conv(x, index, kernel, strides=1, padding="same"):
        name = f"conv{index}"
        if index == 1 and convention["conv1_padding"]:  # torchvision: 224 + 2 * 2 gives conv1 its 55x55
            x = layers.ZeroPadding2D(convention["conv1_padding"], name="conv1_padding", dtype=dtype_policy)(x)
        return layers.Conv2D(
            filters[index - 1], kernel, strides=strides, padding=padding, groups=spec["groups"][index - 1],
            activation=activation, kernel_initializer=kernel_init(name), bias_initializer=bias(name),
            name=name, dtype=dtype_policy,
        )(x)

    def pool(x, name):
        # Overlapping pooling, z=3, s=2 (section 3.4); z=2 gives the same shapes without overlap.
        return layers.MaxPooling2D(pool_size, strides=2, name=name, dtype=dtype_policy)(x)

    def dense(x, name, units, activation):
        return layers.Dense(units, activation=activation, kernel_initializer=kernel_init(name),
                            bias_initializer=bias(name), name=name, dtype=dtype_policy)(x)

    def drop(x, name):
        # A stream of its own per layer and replica: section 4.2 drops fc6's and fc7's units independently.
        return ReplicaDropout(dropout, seed=stream_seed(seed, f"dropout/{name}"), name=name, dtype=dtype_policy)(x)

    # Another framework's network (model.layout) came with its weights: its LRN as that framework ran it.
    scales = lrn_activation_scales(input_scale, init, 11 * 11 * 3, 5 * 5 * filters[0] // spec["groups"][1]) \
        if layout == "project" else (1.0, 1.0)

    def normalise(x, name, activation_scale):
        return LocalResponseNormalization(bias=convention["lrn_bias"], alpha=convention["lrn_alpha"],
                                          activation_scale=activation_scale, name=name, dtype=dtype_policy)(x)

    images, x = prepared_input(image_size, centre, input_scale, colour_noise, colour_stats, seed, layout)
    x = conv(x, 1, 11, strides=4, padding="valid")
    if lrn:
        x = normalise(x, "lrn1", scales[0])
    x = pool(x, "pool1")
    x = conv(x, 2, 5)
    if lrn:
        x = normalise(x, "lrn2", scales[1])
    x = pool(x, "pool2")
    for index in (3, 4):
        if remove_conv != f"conv{index}":
            x = conv(x, index, 3)
    x = conv(x, 5, 3)
    x = pool(x, "pool5")
    x = layers.Flatten(name="flatten", dtype=dtype_policy)(x)
    if variant == "owt":  # torchvision drops the inputs of fc6 and fc7
        x = dense(drop(x, "dropout6"), "fc6", fc_units, activation)
        x = dense(drop(x, "dropout7"), "fc7", fc_units, activation)
    else:  # the paper / Caffe drop the outputs of fc6 and fc7 (section 4.2)
        x = drop(dense(x, "fc6", fc_units, activation), "dropout6")
        x = drop(dense(x, "fc7", fc_units, activation), "dropout7")
    logits = dense(x, "fc8", num_classes, None)
    probs = layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(images, probs, name=f"alexnet_{variant}")
