"""The metrics a run compiles, and their conversion to the errors the paper reports (section 6).

Keras logs accuracies under the names below ("top1", "val_top1", ...); everything that reads them (the
learning-rate schedule, the best-model keeper, the reporter) goes through `errors`. The training loss
(with optional label smoothing) is chosen here too.
"""

from __future__ import annotations

import keras
from keras import ops

TOP1, TOP5 = "top1", "top5"
VALIDATION_PREFIX = "val_"


def compiled_metrics() -> list[keras.metrics.Metric]:
    """Top-1 and top-5 accuracy for model.compile (labels are class indices)."""
    return [keras.metrics.SparseCategoricalAccuracy(name=TOP1),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name=TOP5)]


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


def errors(logs: dict, prefix: str = "") -> dict:
    """{"loss", "top1_error", "top5_error"} from Keras logs; prefix "val_" reads the validation entries."""
    return {
        "loss": float(logs[prefix + "loss"]),
        "top1_error": 1.0 - float(logs[prefix + TOP1]),
        "top5_error": 1.0 - float(logs[prefix + TOP5]),
    }


def validation_errors(logs: dict | None) -> dict | None:
    """errors(logs, "val_"), or None when the logs hold no validation result (an epoch without one)."""
    if not logs or VALIDATION_PREFIX + TOP1 not in logs:
        return None
    return errors(logs, VALIDATION_PREFIX)
