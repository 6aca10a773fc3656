"""The run's TensorBoard event files and the scalars in them, written so that a resumed run continues each series.

Scalars use the optimizer's iteration count as their step; an event at or below the last step already on disk
for its tag (from before a resume) is not written again. Train scalars go to run_dir/train, validation scalars
to run_dir/validation, everything else to run_dir.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from alexnet import rundir, tags

TRAIN, VALIDATION, RUN = rundir.TRAIN_EVENTS, rundir.VALIDATION_EVENTS, ""  # the writers, by folder
# Keras's training loss and errors are averaged over the steps with dropout and augmentation on: TensorBoard
# shows this beside them, so that no one reads them as how well the network fits its training images.
TRAINING_MODE = ("Training mode: averaged over the steps, with dropout and augmentation on. Not how well the "
                 "final weights fit the training images: eval.train_error_images measures that, in inference "
                 "mode (final_metrics.json).")
TRAINING_MODE_TAGS = {*tags.TRAINING_MODE_METRICS, *map(tags.epoch, tags.TRAINING_MODE_METRICS)}


def last_logged_steps(log_dir: Path) -> dict:
    """{tag: highest step already written} for the event files under log_dir."""
    last: dict = {}
    for path in Path(log_dir).glob(rundir.EVENT_FILES):
        try:
            for event in EventFileLoader(str(path)).Load():
                for value in event.summary.value:
                    last[value.tag] = max(last.get(value.tag, -1), event.step)
        except tf.errors.DataLossError:  # the tail of a file cut off by a crash
            pass
    return last


class EventWriters:
    """The run's three event-file writers (TRAIN, VALIDATION, RUN), each knowing the steps already on disk."""

    def __init__(self, run_dir: Path):
        names = (TRAIN, VALIDATION, RUN)
        self.writers = {n: tf.summary.create_file_writer(str(Path(run_dir) / n)) for n in names}
        self.last_step = {n: last_logged_steps(Path(run_dir) / n) for n in names}

    def is_new(self, writer: str, tag: str, step: int) -> bool:
        """True (and recorded) unless the tag already has an event at step or later, from before a resume."""
        if step <= self.last_step[writer].get(tag, -1):
            return False
        self.last_step[writer][tag] = step
        return True

    def scalars(self, writer: str, step: int, values: dict) -> None:
        """Writes each {tag: value} not yet on disk at step; the training-mode tags carry TRAINING_MODE."""
        with self.writers[writer].as_default(step=step):
            for tag, value in values.items():
                if self.is_new(writer, tag, step):
                    training_mode = writer == TRAIN and tag in TRAINING_MODE_TAGS
                    tf.summary.scalar(tag, value, description=TRAINING_MODE if training_mode else None)

    def run_writer(self, step: int):
        """The RUN writer as the default at step (a context), for images, histograms, text and hparams."""
        return self.writers[RUN].as_default(step=step)

    def flush(self) -> None:
        """Flushes every writer."""
        for writer in self.writers.values():
            writer.flush()
