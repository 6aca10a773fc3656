"""What stops a run cleanly: a loss that diverges, and the signals a scheduler sends before it kills a job.

    DivergenceGuard  the training loss not finite, or above train.max_loss_multiple x ln(classes): the run
                     stops at that step (DivergedError, exit status 6), before anything is saved from it.
    SignalStop       SIGTERM (Kubernetes, Slurm, spot instances: ~30 s before the kill) or SIGINT (Ctrl-C):
                     the current step finishes, a backup records it, and the run stops with 128 + the signal
                     (143, 130); the same command resumes at that step. A second signal stops at once. In a
                     multi-worker job the signal reaches one worker: it asks every worker to back up after the
                     next step and stop there (alexnet/training/agreement.py), and every worker exits with
                     128 + that signal, the code the manifests restart the job on.

Both go before the checkpoints in the callback list (Keras calls the callbacks in order), so a diverged
step never reaches a backup or the best model, and an epoch's end is backed up before a signal stops it.
"""

from __future__ import annotations

import math
import signal

import keras

from alexnet.errors import DivergedError, StoppedBySignal
from alexnet.training.checkpoints import Backup


def training_position(model: keras.Model, steps_per_epoch: int) -> tuple[int, int, int]:
    """(global step, epoch (1-based), step within that epoch) of the model's optimizer."""
    step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    return step, (step - 1) // steps_per_epoch + 1, (step - 1) % steps_per_epoch + 1


class DivergenceGuard(keras.callbacks.Callback):
    """Raises DivergedError at the first step whose training loss (the epoch's running mean, as Keras reports
    it) is not finite or above max_loss_multiple x ln(classes) (0: only a non-finite loss), and at the end of
    an epoch whose validation loss is not finite."""

    def __init__(self, num_classes: int, max_loss_multiple: float, steps_per_epoch: int):
        super().__init__()
        self.uniform = math.log(max(num_classes, 2))  # the loss of a uniform guess
        self.limit = max_loss_multiple * self.uniform if max_loss_multiple else math.inf
        self.max_loss_multiple, self.steps_per_epoch = max_loss_multiple, steps_per_epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        if not math.isfinite(loss) or loss > self.limit:
            self._stop(f"the training loss is {loss:.4g}"
                       + ("" if not math.isfinite(loss) else
                          f", above {self.max_loss_multiple:g} x ln(classes) = {self.limit:.3g} "
                          f"(train.max_loss_multiple)"))

    def on_epoch_end(self, epoch, logs=None):
        if logs and "val_loss" in logs and not math.isfinite(float(logs["val_loss"])):
            self._stop(f"the validation loss is {float(logs['val_loss']):.4g}")

    def _stop(self, what: str) -> None:
        step, epoch, in_epoch = training_position(self.model, self.steps_per_epoch)
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        raise DivergedError(
            f"training diverged at step {step} (epoch {epoch}, its step {in_epoch}): {what}, at learning rate "
            f"{rate:.3g}. Lower train.learning_rate, or add train.warmup_epochs or train.clip_norm, then run the "
            f"same command with the change: it resumes from the last backup, written before the divergence")


class SignalStop(keras.callbacks.Callback):
    """Turns SIGTERM and SIGINT into a clean stop after the current step (module doc), while installed."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, backup: Backup):
        super().__init__()
        self.backup = backup
        self.received: int | None = None
        self.asked = False  # multi-worker: whether this worker has asked the others to stop
        self.previous: dict = {}

    def install(self) -> None:
        """Handles the signals from now on (the main thread only, as Python delivers them there)."""
        self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}

    def uninstall(self) -> None:
        """Gives the signals back to the handlers they had."""
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}

    def _handle(self, number, frame) -> None:
        if self.received is not None:  # a second signal: stop now, as without this handler
            self.uninstall()
            signal.raise_signal(number)
            return
        self.received = number
        print(f"{signal.Signals(number).name} received: stopping after the "
              f"{'current step' if self.backup.agreement is None else 'next step, with every worker'}", flush=True)

    def on_train_begin(self, logs=None):
        if self.received is not None and self.backup.agreement is None:  # before the first step: nothing new
            raise self._stopped(self.received, "before training began; nothing new to back up")

    def on_train_batch_end(self, batch, logs=None):
        if self.received is None and self.backup.stop is None:
            return  # no signal here, no stop asked for: the step's position is not read
        step, epoch, in_epoch = training_position(self.model, self.backup.steps_per_epoch)
        if in_epoch == self.backup.steps_per_epoch:
            return  # the epoch's last step: a stop waits for the epoch's end and its backup (on_epoch_end)
        where = f"after step {step} (epoch {epoch}, its step {in_epoch})"
        if self.backup.agreement is None:
            if self.received is not None:
                self.backup.save()
                self.backup.writer.wait()
                raise self._stopped(self.received, f"{where}, backed up to {self.backup.saved}")
        elif self.backup.stop:  # every worker backed up this step: all stop here
            raise self._job_stopped(where)
        else:
            self._ask(step)

    def on_epoch_end(self, epoch, logs=None):
        where = f"at the end of epoch {epoch + 1}"  # the epoch's end is backed up (Backup comes first)
        if self.backup.agreement is None:
            if self.received is not None:
                self.backup.writer.wait()
                raise self._stopped(self.received, f"{where}, backed up")
        elif self.backup.stop:
            raise self._job_stopped(where)
        else:
            self._ask(int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def _ask(self, step: int) -> None:
        """Multi-worker: asks every worker to stop after the next step, once, when a signal came (at the last step
        there is no next one: the run ends anyway)."""
        if self.received is not None and not self.asked and step < self.backup.last_step:
            self.backup.agreement.request(step, self.received)
            self.asked = True

    def _job_stopped(self, where: str) -> StoppedBySignal:
        """The stop every worker of a job makes at the step they agreed on, once the backup has committed."""
        self.backup.writer.wait()
        request = self.backup.stop
        sent = "" if request.sender == self.backup.task.name else f"sent to {request.sender} "
        return self._stopped(request.signal, f"{sent}{where}, backed up with every worker")

    def _stopped(self, number: int, where: str) -> StoppedBySignal:
        return StoppedBySignal(f"stopped by {signal.Signals(number).name} {where}: run the same command again "
                               f"{'on every worker ' if self.backup.agreement else ''}to resume", number)
