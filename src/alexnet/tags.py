"""Every TensorBoard tag the project writes, named once: the writers (training reporter, stall watch, eval,
import, studies) and the readers (report page, compare, tests) import them from here.

Where they go (alexnet/rundir.py names the folders): per-step and per-epoch training scalars in RUN/train/,
per-epoch validation scalars in RUN/validation/, pictures, histograms, texts and hparams in RUN/, make eval's in
RUN/eval/, make lr-find's in RUN/lr_find/, a study's report in logs/<study>/report/.
"""

from __future__ import annotations

# Scalars every tensorboard.every_steps steps (RUN/train/); the loss and errors in training mode.
LOSS, TOP1_ERROR, TOP5_ERROR = "loss", "top1_error", "top5_error"
LEARNING_RATE, IMAGES_PER_SECOND = "learning_rate", "images_per_second"
TRAINING_MODE_METRICS = (LOSS, TOP1_ERROR, TOP5_ERROR)  # Keras's, averaged over steps with dropout and augmentation

# Scalars once an epoch: "epoch_" and the metric (RUN/train/ and, for the metrics, RUN/validation/).
EPOCH_PREFIX = "epoch_"
TIME, TRAIN_TIME, VALIDATION_TIME, PEAK_MEMORY_GB = "time", "train_time", "validation_time", "peak_memory_gb"


def epoch(metric: str) -> str:
    """The per-epoch tag of a metric: epoch_loss, epoch_top1_error, ..."""
    return EPOCH_PREFIX + metric


# Per-layer statistics of the probe batch (RUN/train/, every tensorboard.layer_stats_steps; layer_stats.py).
LAYERS = "layers"
ACTIVATION_RMS, IMAGE_SPREAD, DEAD_FRACTION = "activation_rms", "image_spread", "dead_fraction"
GRADIENT_NORM, WEIGHT_NORM, GAIN_SPREAD = "gradient_norm", "weight_norm", "gain_spread"


def layer(name: str, statistic: str) -> str:
    """layers/<layer>/<statistic>."""
    return f"{LAYERS}/{name}/{statistic}"


def layer_statistic(tag: str) -> tuple[str, str] | None:
    """(layer, statistic) of a layers/<layer>/<statistic> tag; None for any other tag."""
    parts = tag.split("/")
    return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == LAYERS else None


# The run's own folder (RUN/): pictures, texts, histograms, the final errors.
INPUTS = "inputs/augmented"  # augmented training images as the network sees them
FILTERS = "filters/conv1"  # conv1's kernels, the paper's Figure 3
CONFIG = "config"  # the resolved config as text
STALL = "warnings/stall"  # the stalled-start warning (stall.py)


def weights(variable_path: str) -> str:
    """The histogram tag of a weight variable: weights/<layer>/<variable>."""
    return f"weights/{variable_path}"


def final(metric: str) -> str:
    """final/<metric>: the final validation errors, which the HParams tab shows as the run's metrics."""
    return f"final/{metric}"


# make eval (RUN/eval/).
EVAL = "eval"
EVAL_PASSES = ("centre", "ten_crop")
TABLE2 = f"{EVAL}/table2"
CONFUSION = f"{EVAL}/confusion_matrix"
FIGURE4_TOP5 = f"{EVAL}/figure4_top5"
FIGURE4_NEAREST = f"{EVAL}/figure4_nearest_fc7"


def evaluation(pass_name: str, metric: str) -> str:
    """eval/<pass>/<metric> of a make eval pass (centre, ten_crop)."""
    return f"{EVAL}/{pass_name}/{metric}"


# make lr-find (RUN/lr_find/): series against the step, and the plot.
SMOOTHED_LOSS = "smoothed_loss"
LR_FIND_PLOT = "loss_vs_learning_rate"


def study(name: str, item: str) -> str:
    """<study>/<item> in a study's report folder: claims/report, claims/figure1, compare/gradients, ..."""
    return f"{name}/{item}"
