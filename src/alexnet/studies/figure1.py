"""The paper's Figure 1 as the paper ran it: a four-layer CNN, ReLU against tanh, each at its fastest rate.

Section 3.1: "A four-layer convolutional neural network with ReLUs reaches a 25% training error rate on
CIFAR-10 six times faster than an equivalent network with tanh neurons. The learning rates for each network
were chosen independently to make training as fast as possible. No regularization of any kind was employed."

- Network: the layout of cuda-convnet's CIFAR-10 example (layers-18pct, the code the paper's Figure 1 came
  from): conv 32 5x5, max-pool 3/2, conv 32 5x5, max-pool 3/2, conv 64 5x5, max-pool 3/2, a softmax layer:
  four weighted layers. Its response normalisation layers are left out: an equivalent network of four
  layers with nothing but the non-linearity changed. Glorot-uniform weights for both activations.
- Data: a real set at CIFAR-10's 32x32, made offline: the 1,797 UCI handwritten-digit scans scikit-learn
  ships (8x8, 17 grey levels), enlarged to 32x32 (bilinear), as RGB, with the digits set's own 80/20 split
  (alexnet/data/digits.py). Not CIFAR-10, which this project cannot download at run time.
- Training: SGD with momentum 0.9, batch 32, no weight decay, dropout or augmentation. Each activation
  first trains at every rate of FIGURE1_RATES (seed 0); the rate that reaches the threshold in the fewest
  steps is its rate (ties: the lower final training error). Then every seed trains both at their rates,
  paired: the same seed gives the same initial weights and the same order of images.
- Speed: the step at which the training error, over the last WINDOW steps, first reaches the threshold
  (25%, the paper's); the per-seed ratio tanh / ReLU, and its geometric mean with a 95% bootstrap interval,
  beside the paper's "six times".
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from alexnet.data.digits import load_scans, split_indices
from alexnet.records import Figure1Run, Figure1Summary, SpeedUp, ThresholdSteps

SIZE = 32
RATES = (0.003, 0.01, 0.03, 0.1, 0.3)
BATCH = 32
MOMENTUM = 0.9
WINDOW = 10  # steps the training error is averaged over
ACTIVATIONS = ("relu", "tanh")
STRICT_THRESHOLD = 0.05  # a second, lower training error (run_figure1)


def digit_scans_32() -> tuple[np.ndarray, np.ndarray]:
    """The training scans as uint8 (N, 32, 32, 3) and their digits (the digits set's training split)."""
    scans, labels = load_scans()
    train = split_indices(labels)["train"]
    images = keras.ops.convert_to_numpy(keras.ops.image.resize(scans[train, :, :, None], (SIZE, SIZE)))
    images = np.repeat(np.clip(np.round(images * 255), 0, 255).astype(np.uint8), 3, axis=-1)
    return images, labels[train]


def four_layer_cnn(activation: str, num_classes: int = 10, seed: int = 0) -> keras.Model:
    """cuda-convnet's CIFAR-10 layout without its normalisation layers (module doc), uint8 (32, 32, 3) in."""
    init = keras.initializers.GlorotUniform

    def conv(x, filters, index):
        x = layers.Conv2D(filters, 5, padding="same", activation=activation, kernel_initializer=init(seed + index),
                          name=f"conv{index}")(x)
        return layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{index}")(x)

    images = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="images")
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(images)  # pixels to [-1, 1]
    for index, filters in enumerate((32, 32, 64), start=1):
        x = conv(x, filters, index)
    x = layers.Flatten(name="flatten")(x)
    probabilities = layers.Dense(num_classes, activation="softmax", kernel_initializer=init(seed + 4), name="fc4")(x)
    return keras.Model(images, probabilities, name=f"figure1_{activation}")


class StepErrors(keras.callbacks.Callback):
    """The training error of every step (recovered from Keras's running mean of the epoch)."""

    def __init__(self):
        super().__init__()
        self.errors: list[float] = []
        self.previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = 1.0 - float(logs["accuracy"])  # the epoch's running mean, this step included
        self.errors.append((batch + 1) * mean - batch * self.previous_mean if batch else mean)
        self.previous_mean = mean


def train_curve(activation: str, rate: float, seed: int, epochs: int, images, labels) -> dict:
    """One run: the per-step and per-epoch training error and the step it first reaches the threshold."""
    keras.utils.set_random_seed(seed)  # the same seed: the same weights (see four_layer_cnn) and image order
    model = four_layer_cnn(activation, seed=seed)
    model.compile(keras.optimizers.SGD(rate, momentum=MOMENTUM), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    recorder = StepErrors()
    history = model.fit(images, labels, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0,
                        callbacks=[recorder])
    return {"activation": activation, "learning_rate": rate, "seed": seed,
            "step_errors": recorder.errors, "epoch_errors": [1.0 - a for a in history.history["accuracy"]]}


def steps_to(errors: list[float], threshold: float) -> tuple[int, bool]:
    """(the first step whose mean error over the last WINDOW steps is at most threshold, whether it was
    reached); a run that never reached it gives its length plus one, a lower bound."""
    window = np.convolve(errors, np.ones(WINDOW) / WINDOW, mode="valid")
    reached = np.flatnonzero(window <= threshold)
    return (int(reached[0]) + WINDOW, True) if len(reached) else (len(errors) + 1, False)


def fastest_rate(runs: list[dict], threshold: float) -> float:
    """The rate whose run reached the threshold in the fewest steps; ties (also never): the lower final error."""
    def speed(run):
        steps, _ = steps_to(run["step_errors"], threshold)
        return steps, run["epoch_errors"][-1]
    return min(runs, key=speed)["learning_rate"]


def speed_up(relu_steps: list[int], tanh_steps: list[int]) -> SpeedUp:
    """Per-seed ratios tanh / ReLU, their geometric mean and its 95% bootstrap interval (seeds resampled)."""
    logs = np.log(np.asarray(tanh_steps, np.float64) / np.asarray(relu_steps, np.float64))
    resamples = np.random.default_rng(0).integers(0, len(logs), (10_000, len(logs)))
    means = logs[resamples].mean(axis=1)
    return SpeedUp(np.exp(logs).tolist(), float(math.exp(logs.mean())),
                   (float(math.exp(np.percentile(means, 2.5))), float(math.exp(np.percentile(means, 97.5)))))


def run_figure1(seeds: int, epochs: int, threshold: float, log=print) -> Figure1Run:
    """The sweep, the paired seeds at the chosen rates and the speed-up (module doc), as figure1.json's record.

    The speed-up is also measured at STRICT_THRESHOLD: the digit scans are easier than CIFAR-10, so the
    paper's 25% comes within the first epoch, where a lower error is the same stage of training as 25%
    was on CIFAR-10.
    """
    images, labels = digit_scans_32()
    log(f"figure 1: a four-layer CNN on {len(images)} digit scans at 32x32, {epochs} epochs per run; rate sweep "
        f"{', '.join(map(str, RATES))}", flush=True)
    sweep, chosen = {}, {}
    for activation in ACTIVATIONS:
        sweep[activation] = [train_curve(activation, rate, 0, epochs, images, labels) for rate in RATES]
        chosen[activation] = fastest_rate(sweep[activation], threshold)
        log(f"figure 1: {activation}: steps to {threshold:.0%} training error by rate: " + ", ".join(
            f"{run['learning_rate']:g}: {steps_to(run['step_errors'], threshold)[0]}" for run in sweep[activation])
            + f"; chosen {chosen[activation]:g}", flush=True)
    runs = {a: [train_curve(a, chosen[a], seed, epochs, images, labels) for seed in range(seeds)] for a in ACTIVATIONS}
    thresholds = {}
    for level in (threshold, STRICT_THRESHOLD):
        steps = {a: [steps_to(run["step_errors"], level) for run in runs[a]] for a in ACTIVATIONS}
        up = speed_up([s for s, _ in steps["relu"]], [s for s, _ in steps["tanh"]])
        thresholds[str(level)] = ThresholdSteps({a: [s for s, _ in steps[a]] for a in ACTIVATIONS},
                                                {a: [r for _, r in steps[a]] for a in ACTIVATIONS}, up)
        log(f"figure 1: tanh needs {up.geometric_mean:.2f}x the steps of ReLU to reach {level:.0%} training "
            f"error (95% interval {up.interval_95[0]:.2f}-{up.interval_95[1]:.2f}x, {seeds} seeds); the "
            f"paper: 6x at 25% on CIFAR-10", flush=True)
    summary = Figure1Summary(
        seeds=seeds, threshold=threshold, data="UCI handwritten-digit scans (scikit-learn), 32x32, training split",
        images=len(images), epochs=epochs, steps_per_epoch=math.ceil(len(images) / BATCH), window_steps=WINDOW,
        batch=BATCH, rates=list(RATES), paper_speed_up=6.0, chosen_rates=chosen,
        sweep={a: {str(run["learning_rate"]): steps_to(run["step_errors"], threshold)[0] for run in sweep[a]}
               for a in ACTIVATIONS},
        thresholds=thresholds)
    return Figure1Run(summary, {a: [run["step_errors"] for run in runs[a]] for a in ACTIVATIONS})
