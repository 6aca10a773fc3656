"""One seeding rule for every random thing: its own stream, derived from the run's seed and the stream's name.

Weight initialisation (per layer), each dropout layer, the colour noise, the crops and flips, the shuffle and
the TensorBoard sample each draw from `stream_seed(train.seed, name)`. What changes every epoch (the shuffle,
the crops and flips) draws from `epoch_seed(train.seed, name, epoch)`, so epoch e's order and crops are the
same whichever process trains it (a resumed run continues the sequence); the dropout masks and the colour
noise follow the training step (alexnet/random_streams.py), the replica and the worker. Two streams never
share a seed (two Keras layers given the same integer seed draw the same numbers in step: two Dropout
layers of equal width would drop the same units), and the same run seed always gives the same streams, so a
seeded run repeats.

Example:
    stream_seed(0, "dropout/dropout6")   # a 31-bit integer, the same on every machine
    stream_seed(None, "shuffle/0")       # None: drawn afresh (unseeded)
    epoch_seed(0, "shuffle/0", 3)        # an int64 scalar tensor: the shuffle of epoch 3
"""

from __future__ import annotations

import hashlib


def stream_seed(seed: int | None, stream: str) -> int | None:
    """The seed of the named stream of a run seeded with `seed` (a 31-bit integer), or None when seed is None."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"alexnet/{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFF_FFFF


def epoch_seed(seed: int | None, stream: str, epoch):
    """The seed of the named stream in epoch `epoch` (an int or an integer tensor, as tf.data hands a pass its
    index) as an int64 scalar tensor, or None when seed is None."""
    if seed is None:
        return None
    import tensorflow as tf  # only the input pipeline asks; the model's streams need no TensorFlow

    key = tf.stack([tf.constant(stream_seed(seed, stream), tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.stateless_uniform([], key, minval=0, maxval=2**31 - 1, dtype=tf.int64)
