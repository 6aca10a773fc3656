"""How the workers of a multi-worker job agree on a step at which all of them back up, and whether they stop
there: the chief's timed backups, and a signal that reached one worker (a preemption reaches one pod at a time).

Every worker must take part in a backup at the same step (the metric sums are summed across workers as they are
read), and a worker that stops alone leaves the others waiting in the next step's collective. So a worker that
wants a backup at its step s posts "back up at step s + 1" to the key-value store of TensorFlow's coordination
service, and waits until every worker has acknowledged it. No worker can finish step s + 1 before then (a step
needs every worker), so every worker backs up at step s + 1 (and stops there, for a signal). This is the
protocol of TensorFlow's PreemptionCheckpointHandler, which is bound to tf.train.Checkpoint and a custom
training loop; here it serves model.fit and the project's own backups.

The requests are numbered: the n-th is the key "alexnet/save/<n>" (value "<step>,<signal>,<task>"); a worker
that finds the number taken posts under the next. A thread in every worker reads the keys in turn, records
each request and acknowledges it under "alexnet/save/<n>/ack/<task>".
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading

import tensorflow as tf
from tensorflow.python.eager import context  # the coordination service's key-value store (TF's own handler's)

from alexnet.errors import PeerLostError
from alexnet.training.cluster import Task, peer_lost_message

PREFIX = "alexnet/save/"
END = "end"  # the value that ends the watch of every worker (posted once training is over)


@dataclasses.dataclass(frozen=True)
class Request:
    """A backup every worker makes at `step`; with a signal (its number, 0 for none), every worker stops there."""

    step: int
    signal: int = 0
    sender: str = ""  # the task that asked, e.g. "worker 1"

    def merged(self, other: Request | None) -> Request:
        """This request and another at the same step as one (a stop wins)."""
        return self if other is None or self.signal else other


def task_key(task: Task) -> str:
    """A task's name as a key part, e.g. "worker_1"."""
    return f"{task.type}_{task.index}"


def job_tasks(task: Task) -> list[Task]:
    """Every task of the job this task belongs to (a "chief" first, when the cluster names one)."""
    workers = task.count - 1 if task.has_chief else task.count
    return ([Task("chief", 0, task.count, True)] if task.has_chief else []) + [
        Task("worker", i, task.count, task.has_chief) for i in range(workers)]


class JobAgreement:
    """The workers' agreement on backup steps (module doc): `request` asks for one after this step, `due` says
    whether the step just trained is one, `close` ends the watch once training is over."""

    def __init__(self, task: Task, timeout_seconds: float):
        self.task, self.timeout_ms = task, int(timeout_seconds * 1000)
        self.store = context.context()
        self.requests: dict[int, Request] = {}
        self.lock = threading.Lock()
        self.watched = 0  # the number of the next request the watch thread waits for
        self.thread = threading.Thread(target=self._watch, name="backup-agreement", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        with contextlib.suppress(tf.errors.OpError):  # the coordination service is gone: the job ended or failed
            while (value := self.store.get_config_key_value(f"{PREFIX}{self.watched}")) != END:  # blocks till posted
                step, signal, sender = value.split(",", 2)
                request = Request(int(step), int(signal), sender)
                with self.lock:
                    self.requests[request.step] = request.merged(self.requests.get(request.step))
                self.store.set_config_key_value(f"{PREFIX}{self.watched}/ack/{task_key(self.task)}", "1")
                self.watched += 1

    def request(self, step: int, signal: int = 0) -> None:
        """Asks every worker to back up once step + 1 is trained (and, with a signal, to stop there); returns once
        every worker has acknowledged. PeerLostError when one does not within the job's peer timeout."""
        number = self.watched
        value = f"{step + 1},{signal},{self.task.name}"
        while True:
            try:
                self.store.set_config_key_value(f"{PREFIX}{number}", value)
                break
            except tf.errors.AlreadyExistsError:  # another worker's request took the number
                number += 1
        try:
            for task in job_tasks(self.task):
                self.store.get_config_key_value(f"{PREFIX}{number}/ack/{task_key(task)}", self.timeout_ms)
        except tf.errors.OpError as e:
            raise PeerLostError(peer_lost_message(self.task, f"no acknowledgement of a backup request: {e}")) from e

    def due(self, step: int) -> Request | None:
        """The request for this step (every worker backs up now), or None."""
        with self.lock:
            return self.requests.pop(step, None)

    def close(self) -> None:
        """Ends every worker's watch (training is over: no request can come)."""
        with contextlib.suppress(tf.errors.OpError):  # another worker ended it first, or the service is gone
            self.store.set_config_key_value(f"{PREFIX}{self.watched}", END)
