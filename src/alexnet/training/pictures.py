"""The pictures a run shows in TensorBoard's Images tab: the augmented inputs as the network sees them and conv1's
filters (the paper's Figure 3)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from alexnet import tags
from alexnet.seeds import stream_seed
from alexnet.training.layer_stats import weighted_layers

FILTER_ZOOM = 4


def tile(images: np.ndarray, columns: int) -> np.ndarray:
    """Arranges (N, H, W, C) images in [0, 1] into one (1, rows*(H+1), columns*(W+1), C) grid."""
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.ones((rows * (h + 1), columns * (w + 1), c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = image
    return grid[None]


def conv1_filter_grid(kernel: np.ndarray) -> np.ndarray:
    """conv1's (k, k, 3, F) kernel as a grid of RGB filters, each scaled to [0, 1] (the paper's Figure 3); a value
    that is not finite is drawn as 0."""
    filters = np.nan_to_num(np.transpose(kernel, (3, 0, 1, 2)).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low = filters.min(axis=(1, 2, 3), keepdims=True)
    high = filters.max(axis=(1, 2, 3), keepdims=True)
    columns = max(1, int(np.ceil(np.sqrt(len(filters) * 1.5))))
    grid = tile((filters - low) / np.maximum(high - low, 1e-12), columns)
    return grid.repeat(FILTER_ZOOM, axis=1).repeat(FILTER_ZOOM, axis=2)  # 11x11 filters are too small to see


def first_convolution(model: keras.Model):
    """The layer that sees the RGB pixels: AlexNet's conv1, LeNet-5's c1, ResNet's conv1."""
    return next(layer for layer in weighted_layers(model) if len(layer.kernel.shape) == 4)


class EpochPictures:
    """Writes inputs/augmented (a fixed batch of augmented training images with the colour noise on, from a
    stream of its own: alexnet/seeds.py) and filters/conv1 to the default writer."""

    def __init__(self, sample, seed: int):
        self.sample = sample  # (images, labels): a fixed batch of augmented training images, or None
        self.seed = stream_seed(seed, "tensorboard/colour_noise")
        self.colour_noise = None  # a copy of the model's layer with the stream above, made on first use

    def write_inputs(self, model: keras.Model, step: int) -> None:
        """inputs/augmented at step (nothing without a sample)."""
        if self.sample is None:
            return
        if self.colour_noise is None:
            layer = model.get_layer("colour_noise")
            self.colour_noise = type(layer).from_config({**layer.get_config(), "seed": self.seed})
        seen = np.clip(keras.ops.convert_to_numpy(self.colour_noise(self.sample[0], training=True)), 0, 255)
        tf.summary.image(tags.INPUTS, tile(seen / 255.0, columns=8), step=step)

    @staticmethod
    def write_filters(model: keras.Model, step: int) -> None:
        """filters/conv1 of model at step."""
        kernel = keras.ops.convert_to_numpy(first_convolution(model).kernel)
        tf.summary.image(tags.FILTERS, conv1_filter_grid(kernel), step=step)
