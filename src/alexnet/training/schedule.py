"""The learning rate: Keras schedules of the optimizer's step count for warm-up, step and cosine, and the paper's
divide-by-10-on-plateau as the one callback.

A schedule of the step count resumes by itself (a backup restores optimizer.iterations). The plateau rule's
counters (drops so far, best validation error, epochs without improvement) are written after every epoch
(by the chief alone under several workers) and read back by a resumed run; Keras's ReduceLROnPlateau keeps
them in memory only, and cannot lower a rate that is a schedule.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
from keras import ops

from alexnet.metrics import validation_errors
from alexnet.records import PlateauHistory, PlateauState


@keras.saving.register_keras_serializable("alexnet")
class ScheduledRate(keras.optimizers.schedules.LearningRateSchedule):
    """`after` (a Keras schedule of the step, or a constant rate), ramped linearly by (step + 1) / warmup_steps
    over the first warmup_steps steps and divided by 10 for each of the plateau rule's `drops`.

    Keras has a warm-up only inside CosineDecay, and no schedule a callback can lower: `drops` is a variable
    that PlateauRule assigns, read by the compiled training step.
    """

    def __init__(self, after, warmup_steps: float = 0.0, drops: int = 0):
        self.after = after
        self.warmup_steps = float(warmup_steps)
        self.drops = keras.Variable(drops, dtype="int32", trainable=False, name="learning_rate_drops")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = self.after(step) if callable(self.after) else ops.convert_to_tensor(self.after, "float32")
        if self.warmup_steps:
            rate = rate * ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate * ops.power(0.1, ops.cast(self.drops, "float32"))

    def get_config(self) -> dict:
        after = keras.optimizers.schedules.serialize(self.after) if callable(self.after) else self.after
        return {"after": after, "warmup_steps": self.warmup_steps, "drops": int(ops.convert_to_numpy(self.drops))}

    @classmethod
    def from_config(cls, config: dict) -> ScheduledRate:
        after = config["after"]
        return cls(**{**config, "after": keras.optimizers.schedules.deserialize(after)
                      if isinstance(after, dict) else after})


def learning_rate_schedule(train_config, steps_per_epoch: int) -> ScheduledRate:
    """The run's learning rate as a Keras schedule of the optimizer's step (counted from the run's first, 0).

    "paper" and "constant": the rate (the paper's drops are PlateauRule's, section 5). "step": divided by 10
    every step_epochs epochs (torchvision's recipe). "cosine": half a cosine from the rate down to 0 over the
    steps after the warm-up (Loshchilov & Hutter 2017, without restarts). Every schedule ramps up linearly
    over the first warmup_epochs epochs.
    """
    t = train_config
    warmup = t.warmup_epochs * steps_per_epoch
    if t.schedule == "step":
        after = keras.optimizers.schedules.ExponentialDecay(t.learning_rate, t.step_epochs * steps_per_epoch, 0.1,
                                                            staircase=True)
    elif t.schedule == "cosine":
        # CosineDecay's own warm-up phase, held at the rate, starts the cosine after the warm-up; the ramp is
        # ScheduledRate's, the same for every schedule.
        after = keras.optimizers.schedules.CosineDecay(t.learning_rate, max(1.0, t.epochs * steps_per_epoch - warmup),
                                                       warmup_target=t.learning_rate, warmup_steps=warmup)
    else:
        after = t.learning_rate
    return ScheduledRate(after, warmup)


class PlateauRule(keras.callbacks.Callback):
    """The paper's schedule (section 5): divide the rate by 10 when the validation top-1 error has not improved
    for `patience` epochs, at most `max_lr_drops` times, through the schedule's `drops`."""

    def __init__(self, train_config, schedule: ScheduledRate, state_path: str | Path, write_state: bool = True):
        super().__init__()
        self.config = train_config
        self.schedule = schedule
        self.state_path = Path(state_path)
        self.write_state = write_state  # False on the workers of a multi-worker job other than the chief
        self.state = PlateauState()

    def _history(self) -> dict[str, PlateauState]:
        return PlateauHistory.read(self.state_path).epochs if self.state_path.exists() else {}

    def on_epoch_begin(self, epoch, logs=None):
        # After a resume this restores the state the last epoch on record before this one ended with (the
        # previous epoch's, which the driver writes before the backup a resume starts from).
        history = self._history()
        earlier = [int(e) for e in history if int(e) < epoch]
        if earlier:
            self.state = history[str(max(earlier))]
        self.schedule.drops.assign(self.state.drops)

    def on_epoch_end(self, epoch, logs=None):
        val = validation_errors(logs)
        if val:
            error, state = val.top1_error, self.state
            if state.best_error is None or error < state.best_error:
                self.state = dataclasses.replace(state, best_error=error, wait=0)
            elif state.wait + 1 >= self.config.patience and state.drops < self.config.max_lr_drops:
                self.state = dataclasses.replace(state, drops=state.drops + 1, wait=0)
                self.schedule.drops.assign(self.state.drops)
                print(f"validation error has not improved for {self.config.patience} epochs: "
                      f"learning rate divided by 10 (drop {self.state.drops} of {self.config.max_lr_drops})")
            else:
                self.state = dataclasses.replace(state, wait=state.wait + 1)
        if self.write_state:
            PlateauHistory({**self._history(), str(epoch): self.state}).write(self.state_path)
