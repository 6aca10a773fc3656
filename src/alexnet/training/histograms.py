"""Weight histograms for TensorBoard's Histograms and Distributions tabs, counted in NumPy a chunk at a time.

Hand-written where TensorBoard has tf.summary.histogram: its op needs 9 GB for fc6 (histogram_buckets says why).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as histogram_metadata

from alexnet import tags
from alexnet.training.snapshots import host_view

HISTOGRAM_BUCKETS = 30  # tf.summary.histogram's default
HISTOGRAM_CHUNK = 1 << 22  # values counted at a time: 32 MB of float64, whatever the size of the weight
def histogram_buckets(values, bucket_count: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """(bucket_count, 3) float64 rows [left edge, right edge, count]: the buckets tf.summary.histogram writes,
    counted in NumPy a chunk at a time.

    TensorBoard's own op counts through a float64 one-hot matrix of (values x buckets), 9 GB for fc6's 37.7M
    weights (tensorflow/tensorboard#6714); these are the same buckets (equal-width from the minimum to the
    maximum, the last one closed) in HISTOGRAM_CHUNK values of memory at a time. Values that are not finite (a
    diverged network's) are left out: they have no bucket.
    """
    flat = np.ravel(values)

    def finite_chunks():  # one chunk's copy at a time
        for start in range(0, flat.size, HISTOGRAM_CHUNK):
            chunk = flat[start : start + HISTOGRAM_CHUNK]
            if (chunk := chunk[np.isfinite(chunk)]).size:
                yield chunk

    extremes = [(float(c.min()), float(c.max()), c.size) for c in finite_chunks()]
    if not extremes:
        return np.zeros((bucket_count, 3))
    low, high = min(e[0] for e in extremes), max(e[1] for e in extremes)
    if low == high:  # TensorBoard's convention: every value in the last bucket, whose edges are the value
        return np.stack([np.full(bucket_count, high), np.full(bucket_count, high),
                         np.r_[np.zeros(bucket_count - 1), sum(e[2] for e in extremes)]], axis=1)
    width = (high - low) / bucket_count
    counts = np.zeros(bucket_count, np.int64)
    for chunk in finite_chunks():
        index = np.minimum(np.floor((chunk.astype(np.float64) - low) / width).astype(np.int64), bucket_count - 1)
        counts += np.bincount(index, minlength=bucket_count)
    edges = np.linspace(low, high, bucket_count + 1)
    edges[-1] = high
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)


def write_histogram(tag: str, values, step: int) -> None:
    """A histogram summary of values for TensorBoard's Histograms and Distributions tabs (the same event
    tf.summary.histogram writes), to the default writer."""
    tf.summary.write(tag, tf.constant(histogram_buckets(values), tf.float64), step=step,
                     metadata=histogram_metadata.create_summary_metadata(display_name=None, description=None))


def write_weight_histograms(model: keras.Model, step: int) -> None:
    """A histogram of every trainable weight of model, under weights/<its path>, to the default writer."""
    for weight in model.weights:
        if weight.trainable:
            write_histogram(tags.weights(weight.path), host_view(weight), step)  # no copy of the weight
