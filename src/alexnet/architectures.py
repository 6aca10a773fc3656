"""The networks AlexNet is taught by contrast with, built by the same config path (model.arch).

    alexnet   the paper's network (alexnet/model.py; model.variant chooses among its layouts)
    lenet5    LeCun et al. 1998, before it: two convolutions, two subsamplings, three fully connected layers
    resnet18  He et al. 2016, after it: basic blocks [2, 2, 2, 2] with identity (and projection) shortcuts
    plain18   the same 18 layers with every shortcut removed: the skip connections' contrast
    resnet50  keras.applications.ResNet50 (bottleneck blocks [3, 4, 6, 3]), weights=None: nothing downloaded

Every one takes uint8 images and prepares them inside, as AlexNet does (alexnet/model.py): the PCA colour
noise in training, then (pixels - mean) * input_scale; every one ends in a softmax named "probabilities"
over a last Dense layer, whose input is the feature vector eval's Figure 4 and projector use (fc7 for
AlexNet). ARCH_KEYS names the model keys each one takes; the config check refuses the others.

Example:
    model = build_from_config(load_config(None, ["model.arch=resnet18"]).model, num_classes=10)
"""

from __future__ import annotations

import dataclasses
import functools

import keras
from keras import layers

from alexnet.config import ARCH_KEYS, ModelConfig
from alexnet.model import CONFIG_ONLY, build_alexnet, prepared_input
from alexnet.seeds import stream_seed

RESNET18_WIDTHS = (64, 128, 256, 512)  # He et al. 2016, Table 1: conv2_x .. conv5_x
RESNET18_BLOCKS = (2, 2, 2, 2)
LENET5_SIZE = 32  # LeCun et al. 1998: 32x32 inputs


def build_from_config(model_config: ModelConfig, num_classes: int, dtype_policy: str = "float32",
                      seed: int | None = None) -> keras.Model:
    """The network of model.arch with the ModelConfig's values (num_classes from the data set when the config
    says 0); the config check has refused the keys an architecture does not take."""
    values = {f.name: getattr(model_config, f.name) for f in dataclasses.fields(model_config)
              if f.name not in CONFIG_ONLY}
    values["num_classes"] = model_config.num_classes or num_classes
    if model_config.arch == "alexnet":
        return build_alexnet(**values, dtype_policy=dtype_policy, seed=seed)
    taken = {k: v for k, v in values.items() if k in ARCH_KEYS[model_config.arch]}
    return BUILDERS[model_config.arch](**taken, dtype_policy=dtype_policy, seed=seed)


def classifier(x, num_classes: int, seed: int | None, name: str, dtype_policy: str):
    """The last Dense layer (the feature vector is its input) and the float32 softmax."""
    init = keras.initializers.HeNormal(stream_seed(seed, f"init/{name}"))
    logits = layers.Dense(num_classes, kernel_initializer=init, name=name, dtype=dtype_policy)(x)
    return layers.Activation("softmax", name="probabilities", dtype="float32")(logits)


def build_lenet5(num_classes: int = 10, image_size: int = LENET5_SIZE, activation: str = "relu",
                 centre: str = "dataset", input_scale: float = 1.0, colour_noise: float = 0.1,
                 colour_stats: str | None = None, dtype_policy: str = "float32",
                 seed: int | None = None) -> keras.Model:
    """LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, Figure 2): C1 6@5x5, S2, C3 16@5x5, S4, C5 120, F6 84, an
    output per class, on 32x32 inputs.

    Where it differs from 1998, and why: RGB inputs (the same pre-processing as AlexNet's); S2 and S4 are
    2x2 average pools without the paper's trainable coefficient and bias; C3 sees all of S2's six maps, not
    the paper's table of ten partial connections (a device of its time to break symmetry and save
    computation); the hidden layers use model.activation (ReLU by default, as AlexNet, where 1998 had a
    scaled tanh, 1.7159 tanh(2x/3)); the outputs are a softmax over a Dense layer, not Euclidean RBF units.
    146,156 parameters at 1000 classes (62,006 at 10).
    """
    init = keras.initializers.HeNormal

    def conv(x, filters, name):
        return layers.Conv2D(filters, 5, activation=activation, name=name, dtype=dtype_policy,
                             kernel_initializer=init(stream_seed(seed, f"init/{name}")))(x)

    images, x = prepared_input(image_size, centre, input_scale, colour_noise, colour_stats, seed)
    x = conv(x, 6, "c1")  # 32 -> 28
    x = layers.AveragePooling2D(2, name="s2", dtype=dtype_policy)(x)  # -> 14
    x = conv(x, 16, "c3")  # -> 10
    x = layers.AveragePooling2D(2, name="s4", dtype=dtype_policy)(x)  # -> 5
    x = conv(x, 120, "c5")  # -> 1: in 1998 a convolution whose output is 1x1, i.e. fully connected
    x = layers.Flatten(name="flatten", dtype=dtype_policy)(x)
    x = layers.Dense(84, activation=activation, kernel_initializer=init(stream_seed(seed, "init/f6")), name="f6",
                     dtype=dtype_policy)(x)
    return keras.Model(images, classifier(x, num_classes, seed, "output", dtype_policy), name="lenet5")


def build_resnet18(num_classes: int = 1000, image_size: int = 224, shortcuts: bool = True, centre: str = "dataset",
                   input_scale: float = 1.0, colour_noise: float = 0.1, colour_stats: str | None = None,
                   dtype_policy: str = "float32", seed: int | None = None) -> keras.Model:
    """ResNet-18 (He et al. 2016, Table 1; torchvision's layout): conv1 7x7/2 64, max-pool 3x3/2, four stages
    of two basic blocks (3x3 convolutions, batch normalisation after each, the first block of stages 2-4
    halving the size with a 1x1/2 projection shortcut), global average pooling, fc. 11,689,512 trainable
    parameters at 1000 classes, torchvision's count. shortcuts=False: "plain-18", the same layers without
    any shortcut (so without the three projections), whose gradients must pass every layer.
    """

    def conv(x, filters, kernel, strides, name):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name,
                          kernel_initializer=keras.initializers.HeNormal(stream_seed(seed, f"init/{name}")),
                          dtype=dtype_policy)(x)
        return layers.BatchNormalization(name=f"{name}_bn", dtype=dtype_policy)(x)

    images, x = prepared_input(image_size, centre, input_scale, colour_noise, colour_stats, seed)
    x = layers.Activation("relu", name="conv1_relu", dtype=dtype_policy)(conv(x, 64, 7, 2, "conv1"))
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1", dtype=dtype_policy)(x)
    for stage, (filters, blocks) in enumerate(zip(RESNET18_WIDTHS, RESNET18_BLOCKS, strict=True), start=2):
        for block in range(1, blocks + 1):
            name = f"conv{stage}_block{block}"
            strides = 2 if stage > 2 and block == 1 else 1
            y = layers.Activation("relu", name=f"{name}_relu1", dtype=dtype_policy)(
                conv(x, filters, 3, strides, f"{name}_1"))
            y = conv(y, filters, 3, 1, f"{name}_2")
            if shortcuts:
                shortcut = conv(x, filters, 1, strides, f"{name}_projection") if strides > 1 else x
                y = layers.Add(name=f"{name}_add", dtype=dtype_policy)([shortcut, y])
            x = layers.Activation("relu", name=f"{name}_out", dtype=dtype_policy)(y)
    x = layers.GlobalAveragePooling2D(name="pool5", dtype=dtype_policy)(x)
    name = "resnet18" if shortcuts else "plain18"
    return keras.Model(images, classifier(x, num_classes, seed, "fc", dtype_policy), name=name)


def build_resnet50(num_classes: int = 1000, image_size: int = 224, centre: str = "dataset", input_scale: float = 1.0,
                   colour_noise: float = 0.1, colour_stats: str | None = None, dtype_policy: str = "float32",
                   seed: int | None = None) -> keras.Model:
    """keras.applications.ResNet50 with weights=None (no download) behind AlexNet's input preparation, its own
    classifier replaced by the same Dense + softmax as the others. 25,636,712 parameters at 1000 classes,
    keras.applications' count (batch normalisation's moving statistics included)."""
    images, x = prepared_input(image_size, centre, input_scale, colour_noise, colour_stats, seed)
    if seed is not None:  # keras.applications draws its initial weights from the global generators
        keras.utils.set_random_seed(stream_seed(seed, "init/resnet50"))
    # Built on our tensor, its layers become the model's own (the layer statistics see every one of them).
    backbone = keras.applications.ResNet50(weights=None, include_top=False, pooling="avg", input_tensor=x)
    features = backbone.output
    return keras.Model(images, classifier(features, num_classes, seed, "fc", dtype_policy), name="resnet50")


BUILDERS = {"lenet5": build_lenet5, "resnet18": build_resnet18,
            "plain18": functools.partial(build_resnet18, shortcuts=False), "resnet50": build_resnet50}


def multiply_adds(model: keras.Model) -> int:
    """Multiply-adds per image of the model's convolutions and Dense layers (the work that dominates)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            height, width, filters = layer.output.shape[1:]
            kernel = layer.kernel.shape  # (k, k, channels / groups, filters)
            total += height * width * filters * kernel[0] * kernel[1] * kernel[2]
        elif isinstance(layer, layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return int(total)
