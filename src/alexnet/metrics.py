"""The metrics a run compiles, and their conversion to the errors the paper reports (section 6).

Keras logs accuracies under the names below ("top1", "val_top1", ...); everything that reads them (the
learning-rate schedule, the best-model keeper, the reporter, evaluation) goes through `errors`.
"""

from __future__ import annotations

import keras

TOP1, TOP5 = "top1", "top5"
VALIDATION_PREFIX = "val_"


def compiled_metrics() -> list[keras.metrics.Metric]:
    """Top-1 and top-5 accuracy for model.compile (labels are class indices)."""
    return [keras.metrics.SparseCategoricalAccuracy(name=TOP1),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name=TOP5)]


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
