"""`make lr-find`: a learning-rate range test (Smith 2017, "Cyclical Learning Rates", section 3.3).

The configured model trains on the configured data for lr_find.steps steps while the learning rate grows
exponentially from lr_find.min_lr to lr_find.max_lr; the loss of every step, smoothed, is plotted against
the rate. The loss falls where the rate is useful and shoots up where it is too large; the suggested rate
is a tenth of the rate at the lowest smoothed loss, a common, conservative reading of the curve. The sweep
stops early once the smoothed loss exceeds 4x its minimum. A curve that never falls below ln(classes), the
loss of a uniform guess, learnt nothing at any rate: then the start, not the rate, is the problem, and the
test says so. Nothing of the model is kept: it is a probe.

Writes logs/RUN/lr_find/ (TensorBoard: loss and learning rate per step, and the plot as an image),
logs/RUN/lr_find.png and logs/RUN/lr_find.json, and prints the suggestion.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from alexnet import rundir, tags
from alexnet.config import Config
from alexnet.records import LrFindResult
from alexnet.rundir import RunDir
from alexnet.studies.figures import lr_find_plot
from alexnet.studies.runner import publish

DIVERGED = 4.0  # stop once the smoothed loss exceeds this multiple of its minimum
UNIFORM_FRACTION = 0.95  # a sweep whose loss never falls below this much of ln(classes) learnt nothing


def range_schedule(min_lr: float, max_lr: float, steps: int) -> keras.optimizers.schedules.ExponentialDecay:
    """The rate of the range test's step s: min_lr * (max_lr / min_lr) ** (s / (steps - 1)), growing from min_lr at
    the first step to max_lr at the last."""
    return keras.optimizers.schedules.ExponentialDecay(min_lr, steps - 1, max_lr / min_lr)


class RangeTest(keras.callbacks.Callback):
    """Records every step's rate (the optimizer's, from its schedule), its own loss and the smoothed loss; stops
    once the smoothed loss diverges."""

    def __init__(self, smoothing: float):
        super().__init__()
        self.smoothing = smoothing
        self.rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.previous_mean = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):
        # Keras logs the running mean of the epoch; the step's own loss is what that mean added.
        mean = float(logs["loss"])
        loss = (batch + 1) * mean - batch * self.previous_mean if batch else mean
        self.previous_mean = mean
        self.losses.append(loss)
        average = self.smoothing * (self.smoothed[-1] if self.smoothed else loss) + (1 - self.smoothing) * loss
        self.smoothed.append(average)
        if not math.isfinite(loss) or average > DIVERGED * min(self.smoothed):
            self.model.stop_training = True


def suggest(rates, smoothed, uniform: float) -> dict:
    """The suggested rate (a tenth of the rate at the lowest smoothed loss), that rate and loss, and whether the
    network learnt at all: a lowest loss above UNIFORM_FRACTION of uniform (ln(classes)) suggests no rate (None)."""
    best = int(np.nanargmin(smoothed))
    learnt = bool(smoothed[best] < UNIFORM_FRACTION * uniform)
    return {"suggested_learning_rate": float(rates[best] / 10) if learnt else None,
            "lowest_loss_learning_rate": float(rates[best]), "lowest_smoothed_loss": float(smoothed[best]),
            "learnt": learnt}


def find_learning_rate(config: Config, run_dir) -> LrFindResult:
    """Runs the range test of the module doc for config into run_dir; returns the suggestion and the curve."""
    from alexnet.training.driver import build_model, load_data, make_strategy, seed_run

    run = RunDir(run_dir)
    lf = config.lr_find
    strategy = make_strategy(config.train)
    seed_run(config.train)
    run.path.mkdir(parents=True, exist_ok=True)
    data = load_data(config, run, strategy)
    schedule = range_schedule(lf.min_lr, lf.max_lr, lf.steps)
    model = build_model(config, len(data.info.class_names), strategy, schedule)
    test = RangeTest(lf.smoothing)
    print(f"learning-rate range test: {lf.steps} steps from {lf.min_lr:g} to {lf.max_lr:g}", flush=True)
    model.fit(data.train, epochs=1, steps_per_epoch=lf.steps, callbacks=[test], verbose=0, shuffle=False)
    steps = len(test.losses)
    rates = np.asarray(test.rates[:steps])
    uniform = math.log(len(data.info.class_names))  # the loss of a uniform guess
    suggestion = suggest(rates, test.smoothed, uniform)
    y_limit = min(max(test.smoothed), DIVERGED * min(test.smoothed)) * 1.1
    png = lr_find_plot(rates, test.losses, test.smoothed, suggestion["suggested_learning_rate"], uniform, y_limit,
                       f"{run.name}: learning-rate range test")
    (run / rundir.LR_FIND_PLOT).write_bytes(png)
    publish(run / rundir.LR_FIND, texts={}, images={tags.LR_FIND_PLOT: png},
            series={tags.LEARNING_RATE: rates.tolist(), tags.LOSS: test.losses, tags.SMOOTHED_LOSS: test.smoothed})
    result = LrFindResult(**suggestion, uniform_guess_loss=uniform, steps=steps,
                          batch_size=config.train.global_batch_size, learning_rates=rates.tolist(),
                          losses=[float(v) for v in test.losses], smoothed_losses=[float(v) for v in test.smoothed])
    result.write(run / rundir.LR_FIND_RECORD)
    rate = result.suggested_learning_rate
    print(f"lowest smoothed loss {result.lowest_smoothed_loss:.3f} at learning rate "
          f"{result.lowest_loss_learning_rate:.3g} ({steps} steps)", flush=True)
    if rate is None:
        print(f"warning: the loss never fell below {UNIFORM_FRACTION:.0%} of ln({len(data.info.class_names)}) = "
              f"{uniform:.2f}, the loss of a uniform guess: at no rate did the network learn in {steps} steps, so "
              f"no rate is suggested. Look at the start (model.zero_fc8; tensorboard {tags.LAYERS}/*/"
              f"{tags.ACTIVATION_RMS} and {tags.IMAGE_SPREAD}; the input scale) before the rate.", flush=True)
    else:
        print(f"suggested learning rate: {rate:.3g} (ARGS=\"train.learning_rate={rate:.2g}\")", flush=True)
    print(f"plot: {run / rundir.LR_FIND_PLOT}; TensorBoard: {run / rundir.LR_FIND}", flush=True)
    return result
