"""`make first-run`: the first run a new user meets, timed: a fresh clone of this checkout's commit, then its
`make install` and `make train`, from no virtual environment to the exported model.

The clone's run directory moves to logs/<run>/ with first_run.json (records.FirstRun: the wall time, the install's
share, the provenance), so `make eval RUN=<run>` and `make publish RUN=<run>` take it from there. The clone
measures what is committed: uncommitted changes are named and left out. The clone and its virtual environment
(about 3 GB) are deleted at the end.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

from alexnet import rundir
from alexnet.errors import AlexNetError, RunFinishedError
from alexnet.records import FirstRun, code_commit
from alexnet.rundir import RunDir

DEMO_RUN = "demo"  # the run `make train` writes in the clone: configs/demo.yaml's name


def checkout_root() -> Path:
    """The git checkout holding this package's source; AlexNetError outside one."""
    found = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=Path(__file__).parent, capture_output=True,
                           text=True)
    if found.returncode:
        raise AlexNetError("make first-run clones the git checkout this package runs from, and there is none: run it "
                           "from a clone of the repository")
    return Path(found.stdout.strip())


def first_run(logs_dir: str | Path, run: str = DEMO_RUN) -> FirstRun:
    """Clones the checkout into logs_dir/.first-run-clone, times `make install` and `make train` there, moves the
    clone's run to logs_dir/run with its first_run.json; returns the record."""
    logs_dir, root = Path(logs_dir), checkout_root()
    target = logs_dir / run
    if target.exists():
        raise RunFinishedError(f"{target} exists: make first-run writes a new run; choose another RUN=name or move "
                               f"that one aside")
    if code_commit().endswith("+changes"):
        print("first-run: the checkout has uncommitted changes; the clone measures its last commit without them",
              flush=True)
    clone = logs_dir / ".first-run-clone"
    shutil.rmtree(clone, ignore_errors=True)
    logs_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _step(["git", "clone", "--quiet", str(root), str(clone)], root, "git clone")
    _step(["make", "install"], clone, "make install")
    installed = time.perf_counter()
    _step(["make", "train"], clone, "make train")
    finished = time.perf_counter()
    (clone / "logs" / DEMO_RUN).rename(target)
    shutil.rmtree(clone, ignore_errors=True)
    # The clone's run names its commit, machine and the versions the clone installed.
    made = dataclasses.replace(RunDir(target).info().provenance,
                               command=f"make first-run RUN={run}: git clone, make install, make train")
    record = FirstRun(made, finished - started, installed - started)
    record.write(target / rundir.FIRST_RUN)
    print(f"first-run: {record.wall_seconds:.0f} s from the clone to the exported model "
          f"({record.install_seconds:.0f} s of it installing); the run is {target}: make eval RUN={run}, then "
          f"make publish RUN={run}", flush=True)
    return record


def _step(command: list[str], cwd: Path, label: str) -> None:
    """Runs one step of the first run in cwd, its output passed through; AlexNetError naming the step if it fails."""
    print(f"first-run: {label} in {cwd}", flush=True)
    status = subprocess.run(command, cwd=cwd).returncode
    if status:
        raise AlexNetError(f"first-run: `{' '.join(command)}` failed with exit status {status} in {cwd}")
