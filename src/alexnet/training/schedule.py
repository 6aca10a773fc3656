"""Learning-rate control: linear warm-up, then the paper's divide-by-10-on-plateau, a step or a cosine schedule.

The state (drops so far, best validation error, epochs without improvement) is written after every epoch
(by the chief alone under several workers), so a resumed run continues with the learning rate it had.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras

from alexnet.files import read_json, write_json
from alexnet.metrics import validation_errors


class LearningRateController(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before every step.

    schedule "paper": divide by 10 when the validation top-1 error has not improved for `patience`
    epochs, at most `max_lr_drops` times (section 5). "step": divide by 10 every `step_epochs` epochs
    (torchvision's recipe). "cosine": from the rate down to 0 along half a cosine over the steps after
    the warm-up (Loshchilov & Hutter 2017, without restarts). "constant": no change. Warm-up scales the
    rate linearly over the first `warmup_epochs` epochs, by step.
    """

    def __init__(self, train_config, steps_per_epoch: int, state_path: str | Path, write_state: bool = True):
        super().__init__()
        self.config = train_config
        self.steps_per_epoch = steps_per_epoch
        self.state_path = Path(state_path)
        self.write_state = write_state  # False on the workers of a multi-worker job other than the chief
        self.state = {"drops": 0, "best_error": None, "wait": 0}
        self.epoch = 0

    def learning_rate(self, step: int) -> float:
        """The rate for a step (counted from the run's first, 0), from the schedule state."""
        rate = self.config.learning_rate * 0.1 ** self.state["drops"]
        warmup_steps = self.config.warmup_epochs * self.steps_per_epoch
        if step < warmup_steps:
            return rate * (step + 1) / warmup_steps
        if self.config.schedule == "cosine":
            decay_steps = max(1.0, self.config.epochs * self.steps_per_epoch - warmup_steps)
            rate *= 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup_steps) / decay_steps)))
        return rate

    def _history(self) -> dict:
        return read_json(self.state_path) if self.state_path.exists() else {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        # After a resume this restores the state the last epoch on record before this one ended with (the
        # previous epoch's, which the driver writes before the backup a resume starts from).
        history = self._history()
        earlier = [int(e) for e in history if int(e) < epoch]
        if earlier:
            self.state = dict(history[str(max(earlier))])
        if self.config.schedule == "step":
            self.state["drops"] = epoch // self.config.step_epochs

    def on_train_batch_begin(self, batch, logs=None):
        # The optimizer's step count, not epoch and batch: a run resumed mid-epoch starts its batches at 0.
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = self.learning_rate(step)

    def on_epoch_end(self, epoch, logs=None):
        val = validation_errors(logs)
        if self.config.schedule == "paper" and val:
            error = val["top1_error"]
            best = self.state["best_error"]
            if best is None or error < best:
                self.state.update(best_error=error, wait=0)
            else:
                self.state["wait"] += 1
                if self.state["wait"] >= self.config.patience and self.state["drops"] < self.config.max_lr_drops:
                    self.state.update(drops=self.state["drops"] + 1, wait=0)
                    print(f"validation error has not improved for {self.config.patience} epochs: "
                          f"learning rate divided by 10 (drop {self.state['drops']} of {self.config.max_lr_drops})")
        if self.write_state:
            history = self._history()
            history[str(epoch)] = self.state
            write_json(self.state_path, history)
