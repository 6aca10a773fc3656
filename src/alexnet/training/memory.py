"""The process's peak memory, as the epoch lines, final_metrics.json and make bench report it."""

from __future__ import annotations

import resource
import sys


def peak_memory_gb() -> float:
    """This process's peak resident memory so far, in GB.

    On Linux the VmHWM line of /proc/self/status: getrusage's ru_maxrss there starts a new program at the
    peak of the process that started it (a run that make compare or make bench starts would report their
    peak, not its own). Elsewhere ru_maxrss (bytes on macOS, KiB on the other systems).
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024 / 1e9
    except (OSError, StopIteration):
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss / 1e9 if sys.platform == "darwin" else maxrss * 1024 / 1e9
