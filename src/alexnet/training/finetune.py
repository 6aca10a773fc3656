"""Fine-tuning: start from another run's or another framework's weights (model.init_from), optionally with
early layers frozen.

This is how an ImageNet network becomes a model for a few images of one's own:
    make train CONFIG=configs/folder.yaml ARGS="data.dir=my_images model.init_from=alexnet-owt-7be5be79.pth \\
        train.freeze=[conv1,conv2,conv3,conv4,conv5] train.freeze_epochs=3"
model.init_from takes a run's best.keras, torchvision's alexnet .pth or BVLC's .caffemodel (the config then
takes that network's layout and pre-processing). Every layer of the new model whose weights have the same
shapes in the source starts from them; the others (fc8 when the class count differs) keep their fresh
initialisation and are named in the log.
"""

from __future__ import annotations

from pathlib import Path

import keras

from alexnet.applications import layer_weights
from alexnet.pretrained import read_weights


def load_matching_weights(model: keras.Model, path: str | Path) -> list[str]:
    """Copies the weights of every layer of the model at path (a .keras file, or torchvision's or Caffe's,
    alexnet/pretrained.py) into model's layer of the same name and shapes; returns, for each of model's weighted
    layers left as initialised, its name and why. The config check has made sure that the file exists."""
    path = Path(path)
    source = keras.saving.load_model(path, safe_mode=True, compile=False) if path.suffix.lower() == ".keras" else None
    weights = layer_weights(source) if source else read_weights(path)
    kept = []
    for layer in model.layers:
        if not layer.trainable_weights:
            continue
        given = weights.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        given_shapes = [tuple(w.shape) for w in given] if given is not None else None
        if given_shapes != shapes:
            kept.append(f"{layer.name} ({'absent' if given is None else given_shapes} there, {shapes} here)")
        else:
            layer.set_weights(given)
    if source is None:
        return kept  # the layout (alexnet/config.py) has given the model that network's input preparation
    source_layers = {layer.name: layer for layer in source.layers}
    for name in ("standardize", "colour_noise"):  # the input must be prepared as the source model's was
        if name in source_layers and _settings(source_layers[name]) != _settings(model.get_layer(name)):
            print(f"warning: {name} differs from {path}'s: {_settings(source_layers[name])} there, "
                  f"{_settings(model.get_layer(name))} here; fine-tuning works best with the source's input "
                  f"normalisation (model.input_scale, model.colour_stats)")
    return kept


def _settings(layer) -> dict:
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable", "dtype", "seed")}


class FreezeLayers(keras.callbacks.Callback):
    """Keeps the optimizer's frozen_layers fixed for the first `epochs` epochs (see PaperSGD), then trains them."""

    def __init__(self, layers: list[str], epochs: int):
        super().__init__()
        self.layers, self.epochs = layers, epochs

    def on_train_begin(self, logs=None):
        # The layer names were checked with the config (alexnet/config.py).
        self.optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)  # loss scaling
        if not self.optimizer.built:  # fit builds it at the first step; the flag must exist before
            self.optimizer.build(self.model.trainable_variables)

    def on_epoch_begin(self, epoch, logs=None):
        frozen = epoch < self.epochs
        self.optimizer.freeze_active.assign(1.0 if frozen else 0.0)
        if epoch == self.epochs:
            print(f"epoch {epoch + 1}: {', '.join(self.layers)} train from now on", flush=True)
        elif frozen and epoch == 0:
            print(f"{', '.join(self.layers)} frozen for {self.epochs} epoch(s)", flush=True)
