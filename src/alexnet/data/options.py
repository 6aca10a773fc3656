"""The tf.data options of every pipeline that can run for minutes: all cores, and no autotuning thread.

With tf.data's autotuning on, deleting an iterator that has run for a few minutes (the training input at the
end of model.fit, a 10-crop evaluation, writing records) sometimes blocks until the autotuner's next round,
and its rounds come further apart the longer the pipeline runs. Measured with TensorFlow 2.21 on this
project's 2-core machine: 2 of 6 iterators deleted after 150 s waited 51.9 s, 0 of 5 with autotuning off;
py-spy showed a training run's main thread 35 s in that wait (CHANGELOG.md, "Measurements of earlier rounds").
Without the autotuner, AUTOTUNE means min(initial_parallelism, tf.data's thread pool): with initial_parallelism
set to the number of cores, every core.
"""

from __future__ import annotations

import os

import tensorflow as tf


def fixed_parallelism(options: tf.data.Options | None = None) -> tf.data.Options:
    """options (a new tf.data.Options when None) with autotuning off and AUTOTUNE resolved to every core."""
    options = options or tf.data.Options()
    options.autotune.enabled = False
    options.autotune.initial_parallelism = os.cpu_count() or 1
    return options
