"""The walk every study takes: plan its runs, keep the finished ones, train the rest, publish the report.

Each planned run trains with `python -m alexnet train`, the command `make train` runs, in a process of its
own: its peak memory is its own, and the memory it held goes back when it ends (TensorFlow's allocator keeps
what a run took, clear_session or not). A run that has finished is not trained again, so an interrupted
study resumes run by run (and an interrupted run from its backup).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import tensorflow as tf

from alexnet.errors import AlexNetError
from alexnet.rundir import RunDir
from alexnet.studies.figures import tensorboard_image


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its arm (or architecture), the index of its paired seed and what it changes in the
    study's config."""

    arm: str
    seed: int
    overrides: tuple[str, ...]

    @property
    def name(self) -> str:
        """The run's directory under the study's."""
        return f"{self.arm}-seed{self.seed}"


def train_unfinished(study: Path, config_path: str, overrides: list[str], plan: list[PlannedRun],
                     label: str) -> None:
    """Trains each planned run whose study/<name> has not finished, with config_path, overrides and the run's
    own overrides, printing one progress line per planned run (kept or to train); a run that fails ends the
    study with an error naming it (`make <label>` again resumes)."""
    start = time.perf_counter()
    for done, planned in enumerate(plan, start=1):
        run = RunDir(study / planned.name)
        if run.finished:
            print(f"{label}: {run.name} finished earlier, kept ({done}/{len(plan)})", flush=True)
            continue
        print(f"{label}: training {run.name} ({done}/{len(plan)}, {time.perf_counter() - start:.0f} s so far)",
              flush=True)
        command = [sys.executable, "-m", "alexnet", "train", "--config", config_path, "--logs", str(study),
                   "--run", run.name, *overrides, *planned.overrides]
        status = train_in_own_process(command)
        if status:
            raise AlexNetError(f"{label}: {run.name} failed with exit status {status}; run make {label} again "
                               f"to resume")


def study_command(study: str, config_path: str, overrides: list[str]) -> str:
    """The make command that runs a study (claims, compare) with this config and these overrides."""
    return f"make {study} CONFIG={config_path}" + (f' ARGS="{" ".join(overrides)}"' if overrides else "")


def train_in_own_process(command: list[str]) -> int:
    """Runs one planned run's command line (its output passed through); its exit status."""
    return subprocess.run(command).returncode


def publish(directory: Path, texts: dict[str, str], images: dict[str, bytes],
            series: dict[str, list[float]] | None = None) -> None:
    """A study's report in TensorBoard, under directory: each text in the Text tab, each PNG in the Images tab
    (at step 0), and each series of values as a scalar against its index."""
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default(step=0):
        for tag, text in texts.items():
            tf.summary.text(tag, text)
        for tag, png in images.items():
            tensorboard_image(tag, png)
        for tag, values in (series or {}).items():
            for step, value in enumerate(values):
                tf.summary.scalar(tag, value, step=step)
    writer.close()
