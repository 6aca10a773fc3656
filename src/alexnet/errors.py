"""The errors library code raises, and the exit status each one gives the command line.

Library functions raise; only `python -m alexnet` (`__main__`) turns an error into one line on stderr
and its exit status. The codes follow the convention cluster job controllers use to decide on a restart
(Kubeflow's TFJob: 130, 137, 143 and 138 = 128 + SIGUSR1 are retryable, every other code is permanent):

| code | meaning | restart? |
|---|---|---|
| 0 | done | |
| 1 | an unexpected error (a traceback is printed) | no |
| 2 | configuration error: unknown key, wrong type or value, bad command line | no: fix the command |
| 3 | missing or mismatched data, or a missing run, model or export | no: fix the data or the run name |
| 4 | the run is already finished | no: choose another RUN= |
| 5 | another live process is training the run (its host and process are named) | no: one writer per run |
| 6 | the training loss diverged (not finite, or above train.max_loss_multiple x ln(classes)) | no: change the recipe |
| 7 | no space left on the device holding the run (the path and the space needed are named) | no: free space first |
| 130 | interrupted (Ctrl-C): the current step finished and backed up | yes: the same command resumes |
| 138 | a peer worker was lost: restart all workers with the same command | yes |
| 143 | terminated (SIGTERM, a preemption): the current step finished and backed up | yes: the same command resumes |
"""

from __future__ import annotations


class AlexNetError(Exception):
    """Base of the errors the command line reports as one line with a known exit status."""

    exit_code = 1


class ConfigError(AlexNetError, ValueError):
    """A configuration value or command-line argument that is unknown, mistyped or out of range."""

    exit_code = 2


class DataError(AlexNetError, FileNotFoundError):
    """Data, a run, a model or an export that is missing, unreadable or does not match what it is used with."""

    exit_code = 3


class RunFinishedError(AlexNetError):
    """Training into a run directory whose run has already finished."""

    exit_code = 4


class PeerLostError(AlexNetError):
    """A worker of a multi-worker job stopped answering; every worker must be restarted together."""

    exit_code = 138


class RunBusyError(AlexNetError):
    """The run directory is held by another live process (alexnet/rundir.py's RunLock)."""

    exit_code = 5


class DivergedError(AlexNetError):
    """The training loss stopped being finite or grew past its bound: the run is stopped at that step."""

    exit_code = 6


class DiskFullError(AlexNetError):
    """No space left on the device holding the run; what was written before is intact."""

    exit_code = 7


class StoppedBySignal(AlexNetError):
    """SIGTERM or SIGINT: the current step finished and a backup recorded it. Exit status 128 + the signal."""

    exit_code = 143  # 128 + SIGTERM; 130 for SIGINT

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
