"""Fine-tuning: start from another run's weights (model.init_from), optionally with early layers frozen.

This is how an ImageNet run becomes a model for a few images of one's own:
    make train CONFIG=configs/folder.yaml ARGS="data.dir=my_images model.init_from=logs/imagenet2012/best.keras \\
        train.freeze=[conv1,conv2,conv3,conv4,conv5] train.freeze_epochs=3"
Every layer of the new model whose weights have the same shapes in the source model starts from them;
the others (fc8 when the class count differs) keep their fresh initialisation and are named in the log.
"""

from __future__ import annotations

from pathlib import Path

import keras


def load_matching_weights(model: keras.Model, path: str | Path) -> list[str]:
    """Copies the weights of every layer of the .keras model at path into model's layer of the same name and
    shapes; returns, for each of model's weighted layers left as initialised, its name and why. The config
    check has made sure that the file exists."""
    source = keras.saving.load_model(path, safe_mode=True, compile=False)
    source_layers = {layer.name: layer for layer in source.layers}
    kept = []
    for layer in model.layers:
        if not layer.trainable_weights:
            continue
        other = source_layers.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        other_shapes = [tuple(w.shape) for w in other.weights] if other else None
        if other_shapes != shapes:
            kept.append(f"{layer.name} ({'absent' if other is None else other_shapes} there, {shapes} here)")
        else:
            layer.set_weights(other.get_weights())
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
