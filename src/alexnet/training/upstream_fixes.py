"""Where this project leans on Keras internals: the workarounds for upstream bugs, applied only where they are
needed (multi-worker training), and the private names it relies on, in one place.

Checked against keras 3.15.1 and tensorflow 2.21.0 (requirements.txt). tests/test_multi_worker.py trains
two workers with and without the workarounds: without, both bugs must still occur, so the day Keras fixes
them that test fails and says the workarounds can go.

1. keras-team/keras#20585, tensorflow/tensorflow#72388: under MultiWorkerMirroredStrategy with 2 or more
   workers, `reduce_per_replica(..., reduction="auto")` (which fit and evaluate pass themselves, whatever
   `distribute_reduction_method` says) becomes `strategy.reduce("MEAN", v, axis=0)` and fails on the
   scalar step logs: "Invalid reduction dimension 0 for input with 0 dimensions". The fix reduces rank-0
   values over the replicas only (axis=None).
2. keras-team/keras#20329: `TensorFlowTrainer._maybe_symbolic_build` reduces the whole first distributed
   batch with `strategy.reduce("MEAN", batch, axis=None)` just to learn its shapes, which fails under
   MultiWorkerMirroredStrategy ("Attempt to convert a value (PerReplica...) to a Tensor"). The fix builds
   from the first local replica's batch, which has the same shapes.

The private Keras modules are imported only when the workarounds are applied.
"""

from __future__ import annotations

UPSTREAM_ISSUES = ("keras-team/keras#20585", "tensorflow/tensorflow#72388", "keras-team/keras#20329")


def apply_multi_worker_fixes() -> None:
    """Installs workarounds 1 and 2 (idempotent). Call only when training under MultiWorkerMirroredStrategy."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    if getattr(keras_tf_trainer, "_alexnet_fixed", False):
        return
    original_reduce_per_replica = keras_tf_trainer.reduce_per_replica
    original_symbolic_build = keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        """reduce_per_replica, with "auto"/"mean" over the replicas only (axis=None) under multi-worker strategies."""
        if reduction in ("auto", "mean") and keras_tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce_per_replica(values, strategy, reduction)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        """_maybe_symbolic_build that takes the first local replica's batch instead of reducing the whole batch."""
        if self._distribute_strategy is None or iterator is None:
            return original_symbolic_build(self, iterator, data_batch)
        _, _, it = next(iter(iterator))
        data_batch = tree.map_structure(
            lambda x: self.distribute_strategy.experimental_local_results(x)[0]
            if isinstance(x, tf.distribute.DistributedValues) else x, next(it))
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    keras_tf_trainer.reduce_per_replica = reduce_per_replica
    keras_tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    keras_tf_trainer._alexnet_fixed = True
