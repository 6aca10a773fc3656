"""The model's random streams (dropout masks, colour noise): their own per replica and worker, and per step.

A Keras `SeedGenerator` starts in the same state on every replica of a tf.distribute strategy, so two
replicas given the same input would drop the same units and add the same colour noise: half the
randomness the paper's two GPUs had. `ReplicaSeedGenerator` folds the replica's id in the strategy's sync
group into every seed it hands out; under MultiWorkerMirroredStrategy that id counts the replicas of all
workers, so every worker differs too.

A generator's state lives in the process and is not part of a backup, so a resumed run would redraw the
first epoch's masks. `StepSeeds` sets every generator's state from the optimizer's step before each
training step: the masks and noise of step G are those of (the stream's seed, G, the replica), whichever
process draws them, so a resumed run continues the sequence an uninterrupted one draws.

Example:
    layers.Dropout -> ReplicaDropout(0.5, seed=stream_seed(seed, "dropout/dropout6"))
    model.fit(..., callbacks=[StepSeeds()])
"""

from __future__ import annotations

import random

import keras
import numpy as np
from keras import layers


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A SeedGenerator whose seeds differ between the replicas (and workers) of a tf.distribute strategy.

    `seed` is the stream's base (alexnet/seeds.py); None draws one. Outside a strategy with more than one
    replica, and on backends other than TensorFlow, it hands out the plain generator's seeds.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        self.base = random.randint(1, 10**9) if seed is None else seed  # as Keras draws one
        super().__init__(self.base, **kwargs)

    def next(self, ordered=True):
        return fold_replica_id(super().next(ordered))

    def set_step(self, step: int) -> None:
        """Makes the next seed the one of training step `step` of this stream."""
        self.state.assign(np.array([self.base, step], dtype=keras.backend.standardize_dtype(self.state.dtype)))


def fold_replica_id(seed):
    """seed with the id of the current replica folded in, when a TensorFlow strategy runs several replicas."""
    if keras.backend.backend() != "tensorflow":
        return seed
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return seed
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(context.replica_id_in_sync_group, tf.int64))


@keras.saving.register_keras_serializable(package="alexnet")
class ReplicaDropout(layers.Layer):
    """Dropout (section 4.2: each unit zeroed with probability `rate` in training, the rest scaled by
    1 / (1 - rate)) drawing its masks from a ReplicaSeedGenerator."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.built = True

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return keras.random.dropout(inputs, self.rate, seed=self.seed_generator)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def step_seed_generators(model: keras.Model) -> list[ReplicaSeedGenerator]:
    """The ReplicaSeedGenerators of model's layers."""
    return [layer.seed_generator for layer in model.layers
            if isinstance(getattr(layer, "seed_generator", None), ReplicaSeedGenerator)]


class StepSeeds(keras.callbacks.Callback):
    """Before every training step, sets each of the model's ReplicaSeedGenerators to that step's state
    (the optimizer's iteration count, which a backup restores)."""

    def on_train_begin(self, logs=None):
        self.generators = step_seed_generators(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        for generator in self.generators:
            generator.set_step(step)
