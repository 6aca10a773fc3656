"""TensorFlow's native start-up lines, filtered to what TF_CPP_MIN_LOG_LEVEL asks for.

TensorFlow writes some lines to stderr while it loads, before its logging is set up, so that
TF_CPP_MIN_LOG_LEVEL cannot silence them. The command line and every process it starts (make bench's
timed networks) import TensorFlow through import_tensorflow_quietly, so a command prints only its own output.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

# The start-up lines: the glog-style prefix (I/W/E/F + date) and two lines that carry none.
NATIVE_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")
NATIVE_BANNERS = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                  "To enable the following instructions:")


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its start-up lines filtered to TF_CPP_MIN_LOG_LEVEL, where it is installed (the
    package also runs on JAX alone). The command line (`python -m alexnet`, the `alexnet` script) prints only
    its own output: when the package is imported to run it, an unset level means 3, fatal only."""
    if importlib.util.find_spec("tensorflow") is None:
        return
    if sys.argv and (sys.argv[0] == "-m" or Path(sys.argv[0]).name == "alexnet"):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_tensorflow_start():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def quiet_tensorflow_start():
    """Holds back what native code writes to stderr while TensorFlow loads, then passes on what the user asked
    for: at TF_CPP_MIN_LOG_LEVEL=1 (the Makefile sets 3) no INFO lines, at 2 no WARNING lines, at 3 no
    ERROR lines either, as TensorFlow itself would. Lines that are not TensorFlow's log lines always pass."""
    level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0)
    if level == 0:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not _is_hidden(line, level):
                    sys.stderr.write(line)
            sys.stderr.flush()


def _is_hidden(line: str, level: int) -> bool:
    """Whether a native start-up line is below TF_CPP_MIN_LOG_LEVEL (its banners go with the INFO lines)."""
    match = NATIVE_LOG_LINE.match(line)
    if match:
        return "IWEF".index(match.group(1)) < level
    return line.startswith(NATIVE_BANNERS)
