"""Per-layer activation and gradient statistics in TensorBoard: what a flat start looks like from inside.

Every `tensorboard.layer_stats_steps` steps the training reporter sends a fixed probe batch of training
images through the model (inference mode, so dropout and colour noise do not blur the figures) and
writes, for every weighted layer (AlexNet's conv1..conv5, fc6..fc8; every convolution and Dense layer of
the other architectures), these scalars under `layers/<name>/`:

- activation_rms: the root mean square of the layer's output (after its ReLU);
- image_spread: how much the images differ at this layer, the standard deviation across the probe images
  of each output unit, averaged over the units, divided by activation_rms. Near 0, every image looks the
  same to the layers above and the classifier has nothing to separate: the loss stays at ln(classes);
- dead_fraction: the fraction of output units that are zero for every probe image;
- gradient_norm and weight_norm: of the layer's kernel, for the probe batch's mean training loss; their ratio
  times the learning rate is the relative size of a step.

and for each local response normalisation (lrn1, lrn2), `layers/<name>/gain_spread`: how much the layer's
gain (output / input, where the input is positive) varies, its standard deviation over its mean. Near 0,
LRN multiplies everything by one constant and normalises nothing (`lrn_gain_spreads`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from alexnet import tags


def weighted_layers(model: keras.Model) -> list:
    """The layers with a kernel (convolutions and Dense layers), in the model's order."""
    return [layer for layer in model.layers if getattr(layer, "kernel", None) is not None]


def lrn_layers(model: keras.Model) -> list:
    """The model's local response normalisation layers, in order (none in the owt variant)."""
    from alexnet.model import LocalResponseNormalization

    return [layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)]


def gain_spread(inputs, outputs) -> float:
    """The relative standard deviation of outputs / inputs over the positions where inputs > 0."""
    x, y = np.asarray(inputs, np.float64), np.asarray(outputs, np.float64)
    gain = y[x > 0] / x[x > 0]
    return float(gain.std() / gain.mean()) if gain.size else 0.0


def lrn_gain_spreads(model: keras.Model, images) -> dict:
    """{lrn layer name: gain_spread of its output over its input} for images, in inference mode ({} without LRN)."""
    layers = lrn_layers(model)
    if not layers:
        return {}
    probe = keras.Model(model.input, [t for layer in layers for t in (layer.input, layer.output)])
    values = probe(images, training=False)
    return {layer.name: gain_spread(values[2 * i], values[2 * i + 1]) for i, layer in enumerate(layers)}


class LayerProbe:
    """Computes the statistics of the module doc for model's weighted layers on one batch."""

    def __init__(self, model: keras.Model):
        layers = weighted_layers(model)
        self.names = [layer.name for layer in layers]
        self.lrn_names = [layer.name for layer in lrn_layers(model)]
        lrn_ends = [t for layer in lrn_layers(model) for t in (layer.input, layer.output)]
        # Shares model's layers and weights.
        self.model = keras.Model(model.input, [*(layer.output for layer in layers), *lrn_ends, model.output])
        self.kernels = [layer.kernel for layer in layers]
        self.loss = keras.losses.get(model.loss)  # the compiled training loss (label smoothing included)

    def __call__(self, images, labels) -> dict:
        """{tags.layer(name, statistic): value} for images and their labels."""
        with tf.GradientTape() as tape:
            *outputs, probabilities = self.model(images, training=False)
            loss = tf.reduce_mean(self.loss(labels, probabilities))
        gradients = tape.gradient(loss, [k.value for k in self.kernels])
        activations, lrn_ends = outputs[: len(self.names)], outputs[len(self.names) :]
        stats = {tags.layer(name, tags.GAIN_SPREAD): gain_spread(lrn_ends[2 * i], lrn_ends[2 * i + 1])
                 for i, name in enumerate(self.lrn_names)}
        for name, activation, kernel, gradient in zip(self.names, activations, self.kernels, gradients, strict=True):
            a = np.asarray(activation, np.float64).reshape(len(activation), -1)  # (images, units)
            rms = float(np.sqrt(np.mean(a**2)))
            stats[tags.layer(name, tags.ACTIVATION_RMS)] = rms
            stats[tags.layer(name, tags.IMAGE_SPREAD)] = float(a.std(axis=0).mean() / max(rms, 1e-12))
            stats[tags.layer(name, tags.DEAD_FRACTION)] = float(np.mean(np.all(a <= 0, axis=0)))
            stats[tags.layer(name, tags.GRADIENT_NORM)] = float(tf.norm(tf.cast(gradient, tf.float32)))
            stats[tags.layer(name, tags.WEIGHT_NORM)] = float(tf.norm(tf.cast(kernel.value, tf.float32)))
        return stats
