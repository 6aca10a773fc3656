"""A stalled start, named while it happens: the training loss still at ln(classes) after train.stall_epochs.

The most reported failure of AlexNet re-implementations is a run whose loss never leaves ln(classes), the
loss of a uniform guess. At the end of epoch train.stall_epochs, if the epoch's mean training loss is
within STALL_FRACTION of ln(classes) (above or below), one line in the log and a TensorBoard text entry
(`warnings/stall`) say so, with the layer that went silent (from the per-layer statistics of a probe batch,
at the start and now: see alexnet/training/layer_stats.py) and the settings to change. Training goes on.
The watch reads the training reporter's probe and writes through its event files: one of each per run.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from alexnet import tags
from alexnet.training.reporting import TrainingReporter

STALL_FRACTION = 0.05  # a loss within 5% of ln(classes) has learnt (next to) nothing
SILENT_DROP = 10.0  # a layer whose activation RMS fell this many times since the start has gone silent
DEAD = 0.9  # or whose units are zero for this fraction of them on every probe image
QUIETER = 2.0  # short of that, the layer whose RMS fell most is named if it fell this many times
# The remedy measured at the claims scale (CHANGELOG.md, "Measurements of earlier rounds"): 10 of 10 seeds learnt
# with fc8 at 0, 6 of 10 without; gradient clipping at norm 1 made every seed slower.
ADVICE = ("start with uniform predictions, model.zero_fc8=true, so that the first steps do not silence the layers "
          "(docs/model.md, \"Every run learns\"); if it is set already, lower train.learning_rate")


def silent_layer(start: dict, now: dict) -> tuple[str, str] | None:
    """(layer, what happened) of the lowest layer that went silent between two LayerProbe results: its
    activation RMS fell SILENT_DROP times or more, or DEAD of its units are dead; else the layer whose RMS
    fell most, if it fell QUIETER times; None when no layer lost that much activity."""
    names = [layer for layer, statistic in filter(None, map(tags.layer_statistic, start))
             if statistic == tags.ACTIVATION_RMS]
    drops = {}
    for name in names:
        before, after = start[tags.layer(name, tags.ACTIVATION_RMS)], now[tags.layer(name, tags.ACTIVATION_RMS)]
        dead = now[tags.layer(name, tags.DEAD_FRACTION)]
        drops[name] = before / max(after, 1e-12)
        what = f"activation RMS {before:.3g} -> {after:.3g}, {dead:.0%} of its units dead"
        if drops[name] >= SILENT_DROP or dead >= DEAD:
            return name, what
    name = max(drops, key=drops.get, default=None)
    if name is None or drops[name] < QUIETER:
        return None
    rms = tags.layer(name, tags.ACTIVATION_RMS)
    return name, f"activation RMS {start[rms]:.3g} -> {now[rms]:.3g}"


def stall_message(epoch: int, loss: float, num_classes: int, layer: tuple[str, str] | None) -> str:
    """The line a stalled start prints and writes to TensorBoard."""
    uniform = math.log(num_classes)
    where = (f"{layer[0]} went silent first ({layer[1]})" if layer else
             "no layer lost its activity: the gradients reach every layer but do not lower the loss")
    return (f"warning: stalled start: after {epoch} epoch(s) the training loss {loss:.3f} is still that of a "
            f"uniform guess (ln({num_classes}) = {uniform:.3f}); {where}. To fix it, {ADVICE}.")


class StallWatch(keras.callbacks.Callback):
    """Warns once when the start stalls (module doc), with the reporter's probe on its fixed sample batch and
    through its event files."""

    def __init__(self, reporter: TrainingReporter, epochs: int, num_classes: int):
        super().__init__()
        self.reporter, self.epochs, self.num_classes = reporter, epochs, num_classes
        self.start = None  # the probe's statistics at step 0
        self.message = None  # the warning, once given

    def on_train_begin(self, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == 0:  # a resumed run has no start to compare with
            self.start = self.reporter.probe()(*self.reporter.sample)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.epochs or not logs:
            return
        loss, uniform = float(logs["loss"]), math.log(self.num_classes)
        if not np.isfinite(loss) or abs(loss - uniform) > STALL_FRACTION * uniform:
            return
        layer = silent_layer(self.start, self.reporter.probe()(*self.reporter.sample)) if self.start else None
        self.message = stall_message(epoch + 1, loss, self.num_classes, layer)
        print(self.message, flush=True)
        with self.reporter.events.run_writer(int(self.model.optimizer.iterations.numpy())):
            tf.summary.text(tags.STALL, self.message)
        self.reporter.events.flush()
