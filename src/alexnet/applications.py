"""`alexnet.AlexNet(...)`: the network as a library, in the style of keras.applications.

Example:
    import alexnet
    model = alexnet.AlexNet(weights="imagenet")          # torchvision's trained network (downloaded once)
    probabilities = model(uint8_images)                  # (N, 224, 224, 3) uint8 RGB -> (N, 1000)
    features = alexnet.AlexNet(include_top=False, pooling="avg", weights="path/to/bvlc_alexnet.caffemodel")
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import keras
from keras import layers

from alexnet.architectures import build_from_config
from alexnet.config import (
    LAYOUT_KEYS,
    WEIGHT_FILE_LAYOUTS,
    ModelConfig,
    check_alexnet_size,
    check_section,
    follow_weight_file,
)
from alexnet.errors import ConfigError, DataError
from alexnet.pretrained import (
    TORCHVISION_FILE,
    TORCHVISION_SHA256_PREFIX,
    TORCHVISION_URL,
    read_weights,
    torchvision_file_ok,
)

POOLINGS = {"avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}


def AlexNet(  # noqa: N802  the keras.applications convention: a constructor named like the class it returns
    variant: str = "paper",
    include_top: bool = True,
    weights: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    **model_keys,
) -> keras.Model:
    """AlexNet, with the names and meanings of keras.applications.

    variant: "paper" (one tower), "paper_grouped" (the paper's two towers) or "owt" (torchvision's layout).
    weights: None (random, the paper's initialisation unless model_keys say otherwise), "imagenet"
    (torchvision's trained network, fetched once with keras.utils.get_file into Keras's cache), or the path
    of a torchvision .pth, a BVLC .caffemodel or a .keras file this project wrote. A .pth or .caffemodel
    decides the layout (the variant, the input size, the pre-processing and LRN of the framework that
    trained it); a variant that contradicts it is a ConfigError naming both.
    include_top: the classifier (fc6..fc8); without it the model ends at pool5's feature map, or with
    pooling "avg" or "max" at its pooled vector. input_shape: (S, S, 3) with S the network's input size
    (227, or 224 for torchvision's); without the top any S of at least 35. classes: with the top and
    trained weights from a file, the file's (1000). classifier_activation: "softmax", or None for logits.
    model_keys: any other key of the config's model section (alexnet/config.py), e.g. dropout=0.3.

    The model takes uint8 images (N, S, S, 3), RGB; it converts, normalises and (for Caffe's network)
    reorders the channels itself.
    """
    path = fetch_torchvision_weights() if weights == "imagenet" else Path(weights) if weights else None
    if path is not None and not path.is_file():
        raise DataError(f"weights={weights}: no such file; pass 'imagenet', a torchvision .pth, a BVLC .caffemodel "
                        f"or a .keras file")
    if pooling not in (None, *POOLINGS):
        raise ConfigError(f"pooling={pooling!r}: expected None, 'avg' or 'max'")
    if classes < 1:
        raise ConfigError(f"classes={classes}: a classifier needs at least one class")
    config = ModelConfig(**check_section("model", ModelConfig, {"variant": variant, "num_classes": classes,
                                                                **model_keys}))
    if config.arch != "alexnet":
        raise ConfigError(f"arch={config.arch!r}: alexnet.AlexNet builds AlexNet (model.arch is make train's key)")
    config.init_from = str(path) if path else None
    follow_weight_file(config)
    config.image_size = _image_size(config, input_shape, include_top)
    check_alexnet_size(config.image_size)
    trained = source_weights(path) if path else None
    if trained and include_top and len(trained["fc8"][-1]) != classes:
        raise ConfigError(f"classes={classes} with the top of {path.name}, which classifies {len(trained['fc8'][-1])} "
                          f"classes: pass classes={len(trained['fc8'][-1])}, or include_top=False and a classifier of "
                          f"your own")
    model = build_from_config(config, classes)
    if trained:
        load_weights(model, trained, path, include_top)
    if include_top:
        if classifier_activation != "softmax":
            logits = model.get_layer("fc8").output
            model = keras.Model(model.input, layers.Activation(classifier_activation or "linear",
                                                               name="predictions", dtype="float32")(logits))
    else:
        features = model.get_layer("pool5").output
        if pooling:
            features = POOLINGS[pooling](name=f"{pooling}_pool", dtype="float32")(features)
        model = keras.Model(model.input, features)
    model.name = name or f"alexnet_{config.variant}"
    return model


def _image_size(config: ModelConfig, input_shape, include_top: bool) -> int:
    """The input side from input_shape, checked against what the layout and the top allow."""
    fixed = LAYOUT_KEYS.get(config.layout, {}).get("image_size")
    if input_shape is None:
        return fixed or config.image_size
    if len(input_shape) != 3 or input_shape[2] != 3 or input_shape[0] != input_shape[1]:
        raise ConfigError(f"input_shape={tuple(input_shape)}: expected (S, S, 3), square RGB images")
    size = int(input_shape[0])
    if fixed and include_top and size != fixed:
        raise ConfigError(f"input_shape={tuple(input_shape)} with the top of {config.layout}'s network, whose fc6 "
                          f"takes the pool5 of {fixed}x{fixed} inputs: pass ({fixed}, {fixed}, 3) or include_top=False")
    return size


def source_weights(path: Path) -> dict[str, list]:
    """{layer name: its weights} of a torchvision .pth, a BVLC .caffemodel or a .keras file this project wrote."""
    if path.suffix.lower() in WEIGHT_FILE_LAYOUTS:
        return read_weights(path)
    return layer_weights(keras.saving.load_model(path, safe_mode=True, compile=False))


def layer_weights(model: keras.Model) -> dict[str, list]:
    """{layer name: its weights} of the model's layers that have any."""
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def load_weights(model: keras.Model, weights: dict[str, list], path: Path, include_top: bool = True) -> None:
    """Sets model's layers from source_weights(path); DataError naming the layer and both shapes when one does
    not fit (fc6..fc8 are left out without the top)."""
    for layer in model.layers:
        if not layer.weights or (not include_top and layer.name in ("fc6", "fc7", "fc8")):
            continue
        given = weights.get(layer.name)
        wanted = [tuple(w.shape) for w in layer.weights]
        if given is None or [tuple(w.shape) for w in given] != wanted:
            raise DataError(f"{path} does not fit this network: its {layer.name} is "
                            f"{[tuple(w.shape) for w in given] if given else 'absent'}, the network's {wanted}; "
                            f"expected a file of the same variant and widths")
        layer.set_weights(given)


def fetch_torchvision_weights() -> Path:
    """torchvision's alexnet file in Keras's cache ($KERAS_HOME or ~/.keras, then models/), downloaded on this
    explicit request (keras.utils.get_file keeps a file it has) and checked against its published SHA-256
    prefix; DataError saying where to put the file when it cannot be fetched."""
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"
    try:
        target = Path(keras.utils.get_file(TORCHVISION_FILE, TORCHVISION_URL, cache_subdir="models"))
    except Exception as e:  # urllib's, http's and OSError's kinds alike mean "not fetched"
        raise DataError(f"weights='imagenet' could not download {TORCHVISION_URL} ({type(e).__name__}: {e}); put "
                        f"{TORCHVISION_FILE} into {cache}/ (or pass its path as weights=...)") from e
    if not torchvision_file_ok(target):
        with contextlib.suppress(OSError):
            shutil.move(target, target.with_suffix(".damaged"))
        raise DataError(f"{target} does not match torchvision's published checksum (its SHA-256 must start with "
                        f"{TORCHVISION_SHA256_PREFIX}): moved aside; download it again")
    return target
