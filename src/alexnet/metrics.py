"""The metrics a run compiles, and their conversion to the errors the paper reports (section 6).

Keras logs accuracies under the names below ("top1", "val_top1", ...); everything that reads them (the
learning-rate schedule, the best-model keeper, the reporter) goes through `errors`. The training loss
(with optional label smoothing) is chosen here too.

Scoring cannot flatter (`top_k_hits`, the one rule for training, validation and `make eval`): a class tied
with the true one counts as ranked above it, and an output with a non-finite value is a miss. Keras's own
accuracies count ties as hits (tf.math.in_top_k takes every tied class into the top k, and argmax takes the
first of a tie), so a network whose outputs are all equal, such as one started with fc8 at 0, scores a
perfect top-5.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from alexnet import tags
from alexnet.records import Errors

TOP1, TOP5 = "top1", "top5"
VALIDATION_PREFIX = "val_"


def top_k_hits(labels, probabilities, k: int):
    """float32 (B,): 1 where the true class is among the k most probable, 0 otherwise.

    Every other class at least as probable as the true one ranks above it (ties count against the model),
    and a row with a NaN or infinite value is a miss. Works on tensors and NumPy arrays alike.
    """
    p = ops.cast(probabilities, "float32")
    labels = ops.cast(ops.reshape(labels, (-1, 1)), "int32")
    true = ops.take_along_axis(p, labels, axis=1)
    rivals = ops.sum(ops.cast(p >= true, "int32"), axis=1) - 1  # the true class is >= itself
    return ops.cast(ops.logical_and(rivals < k, ops.all(ops.isfinite(p), axis=1)), "float32")


@keras.saving.register_keras_serializable(package="alexnet")
class TopKAccuracy(keras.metrics.MeanMetricWrapper):
    """The fraction of images whose true class (an index) is among the k most probable, by `top_k_hits`."""

    def __init__(self, k: int = 1, name: str | None = None, dtype=None):
        super().__init__(top_k_hits, name=name or f"top{k}", dtype=dtype, k=k)
        self.k = k

    def get_config(self) -> dict:
        return {"k": self.k, "name": self.name, "dtype": self.dtype}


def compiled_metrics() -> list[keras.metrics.Metric]:
    """Top-1 and top-5 accuracy for model.compile (labels are class indices), ties and non-finite outputs
    counted as misses."""
    return [TopKAccuracy(1, name=TOP1), TopKAccuracy(5, name=TOP5)]


@keras.saving.register_keras_serializable(package="alexnet")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of predicted probabilities against class indices smoothed towards the uniform guess.

    The target of an image of class k is (1 - smoothing) one_hot(k) + smoothing / classes (not in the
    paper; Keras's own label_smoothing exists only for one-hot labels).
    """

    def __init__(self, smoothing: float, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        one_hot = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "smoothing": self.smoothing}


def training_loss(label_smoothing: float) -> str | keras.losses.Loss:
    """The loss model.compile uses: plain sparse cross-entropy, or the smoothed one when label_smoothing > 0."""
    return SmoothedSparseCrossentropy(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy"


@dataclasses.dataclass(frozen=True)
class LoggedErrors:
    """The loss and the top-1 and top-5 error Keras logged for an epoch or a step (its logs hold accuracies)."""

    loss: float
    top1_error: float
    top5_error: float

    def scalars(self) -> dict[str, float]:
        """{TensorBoard tag: value} of the three."""
        return {tags.LOSS: self.loss, tags.TOP1_ERROR: self.top1_error, tags.TOP5_ERROR: self.top5_error}


def errors(logs: dict, prefix: str = "") -> LoggedErrors:
    """The loss and errors in Keras logs; prefix "val_" reads the validation entries."""
    return LoggedErrors(float(logs[prefix + "loss"]), 1.0 - float(logs[prefix + TOP1]),
                        1.0 - float(logs[prefix + TOP5]))


def validation_errors(logs: dict | None) -> LoggedErrors | None:
    """errors(logs, "val_"), or None when the logs hold no validation result (an epoch without one)."""
    if not logs or VALIDATION_PREFIX + TOP1 not in logs:
        return None
    return errors(logs, VALIDATION_PREFIX)


def errors_of(probabilities: np.ndarray, labels: np.ndarray) -> Errors:
    """Top-1 and top-5 error of predicted probabilities (top_k_hits's rule: ties and non-finite outputs are
    errors), mean loss, images."""
    true = probabilities[np.arange(len(labels)), labels]
    top1, top5 = (float(np.mean(ops.convert_to_numpy(top_k_hits(labels, probabilities, k)))) for k in (1, 5))
    return Errors(top1_error=1.0 - top1, top5_error=1.0 - top5,
                  loss=float(np.mean(-np.log(np.maximum(true, 1e-12)))), images=int(len(labels)))
