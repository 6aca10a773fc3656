"""Where this process stands in a multi-worker job: TensorFlow's TF_CONFIG, read without any TensorFlow call.

Cluster launchers (Kubeflow's TFJob, or a shell per machine) set TF_CONFIG in every worker (in a Kubeflow
Trainer v2 TrainJob, set_tf_config_from_trainjob makes it):
    {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}
With no "chief" in the cluster, worker 0 is the chief: it alone writes TensorBoard, the backups, best.keras,
the export and the final metrics. Every worker still takes part in every backup's snapshot (variables such as
metric totals are aggregated across workers while they are read; alexnet/training/agreement.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass

from alexnet.errors import ConfigError, PeerLostError


@dataclass(frozen=True)
class Task:
    """This process's task: its type and index, the number of tasks, and whether it is the chief."""

    type: str = "worker"
    index: int = 0
    count: int = 1
    has_chief: bool = False  # whether the cluster names a "chief" task

    @property
    def is_chief(self) -> bool:
        """The chief writes the run's files; with no "chief" task, worker 0 is it."""
        return self.type == "chief" or (self.type == "worker" and self.index == 0 and not self.has_chief)

    @property
    def name(self) -> str:
        """E.g. "worker 1"."""
        return f"{self.type} {self.index}"


def current_task(environ=os.environ) -> Task:
    """This process's Task from TF_CONFIG; a single worker when TF_CONFIG is unset or names one task."""
    raw = environ.get("TF_CONFIG", "")
    if not raw:
        return Task()
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config.get("task", {})
        count = sum(len(addresses) for kind, addresses in cluster.items() if kind in ("chief", "worker"))
        return Task(type=task.get("type", "worker"), index=int(task.get("index", 0)), count=count,
                    has_chief=bool(cluster.get("chief")))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON of the form {{\"cluster\": {{\"worker\": [\"host:port\", "
                          f"...]}}, \"task\": {{\"type\": \"worker\", \"index\": 0}}}}: {e}") from e


SINGLE_WORKER = Task()  # a process outside any multi-worker job

# A pod of a Kubeflow Trainer v2 TrainJob (deploy/trainjob.yaml) has no TF_CONFIG: its JobSet names the pods
# <trainjob>-node-0-<i> under the headless service <trainjob>, Kubernetes gives each its index in
# JOB_COMPLETION_INDEX, and the runtime passes the TrainJob's name and node count in these variables.
TRAINJOB_NAME, TRAINJOB_NODES, TRAINJOB_PORT = "ALEXNET_TRAINJOB", "ALEXNET_NUM_NODES", 2222


def set_tf_config_from_trainjob(environ=os.environ) -> None:
    """Sets TF_CONFIG (the workers' addresses and this pod's index) in a TrainJob's pod, where it is unset."""
    if environ.get("TF_CONFIG") or not all(environ.get(k) for k in (TRAINJOB_NAME, TRAINJOB_NODES)):
        return
    name = environ[TRAINJOB_NAME]
    try:
        nodes, index = int(environ[TRAINJOB_NODES]), int(environ["JOB_COMPLETION_INDEX"])
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{TRAINJOB_NODES} and JOB_COMPLETION_INDEX must be whole numbers in a TrainJob's pod "
                          f"(the Job must be Indexed): {e}") from e
    workers = [f"{name}-node-0-{i}.{name}:{TRAINJOB_PORT}" for i in range(nodes)]
    environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


# Words of the errors TensorFlow raises in a survivor when another task of the job dies.
PEER_LOST_SIGNS = ("heartbeat", "task has failed", "preempted", "Socket closed", "Connection reset",
                   "failed to connect", "UNAVAILABLE", "coordination service")


def lost_tasks(task: Task, error_text: str) -> list[str]:
    """The other tasks ("worker 1") that TensorFlow's error text names, as /job:worker/task:1."""
    found = {f"{kind} {index}" for kind, index in re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", error_text)}
    return sorted(found - {task.name})


def peer_lost_message(task: Task, error_text: str) -> str:
    """The one line a survivor prints: which task was lost (when TensorFlow's error says), what to do."""
    lost = lost_tasks(task, error_text)
    who = " and ".join(lost) if lost else "a peer worker"
    return (f"{who} of the job was lost ({task.name} noticed: {error_text.strip().splitlines()[0][:160]}): "
            f"restart all workers with the same command; training resumes from the last backup")


def is_peer_loss(error: BaseException) -> bool:
    """Whether a TensorFlow error raised during multi-worker training means another task died."""
    import tensorflow as tf

    lost_kinds = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                  tf.errors.CancelledError, tf.errors.InternalError)
    return isinstance(error, lost_kinds) and any(sign.lower() in str(error).lower() for sign in PEER_LOST_SIGNS)


class PeerWatchdog:
    """Ends the process with PeerLostError's exit code when training makes no progress for `seconds` (5 times
    that before the first step of an epoch: tracing and filling the shuffle buffer take their time).

    A survivor can hang inside a collective when a peer dies instead of failing; the coordination
    service's heartbeat usually turns that into an error within seconds, and this bounds the rest.
    `tick()` is called on every step, evaluation step and epoch end, `tick(slow=True)` when an epoch begins;
    `stop()` ends the watch.
    """

    FIRST_STEP_FACTOR = 5

    def __init__(self, task: Task, seconds: float):
        self.task, self.seconds = task, seconds
        self.last = time.monotonic()
        self.slow = True  # the next step may take FIRST_STEP_FACTOR times as long
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="peer-watchdog", daemon=True)
        self.thread.start()

    def tick(self, slow: bool = False) -> None:
        """Records training progress; slow: the next step is an epoch's first."""
        self.last, self.slow = time.monotonic(), slow

    def stop(self) -> None:
        """Ends the watch (training finished or failed on its own)."""
        self.done.set()

    def _watch(self) -> None:
        while not self.done.wait(1.0):
            limit = self.seconds * (self.FIRST_STEP_FACTOR if self.slow else 1)
            if time.monotonic() - self.last > limit:
                print(f"error: {peer_lost_message(self.task, f'no training progress for {limit:.0f} s')}",
                      file=sys.stderr, flush=True)
                os._exit(PeerLostError.exit_code)  # the main thread may be stuck in a collective
