"""history.csv: one typed row per epoch, the documented record of a run that the studies (claims, compare) and
the driver read back through `read_history`, and the console line of each."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from alexnet import rundir


@dataclasses.dataclass(frozen=True)
class HistoryRow:
    """One epoch. loss and the errors are Keras's, averaged over the epoch's steps in training mode (dropout and
    augmentation on); val_* are the validation pass's (None: no validation that epoch); learning_rate is the rate
    of the epoch's last step; seconds is the whole epoch, train_seconds and validation_seconds its
    two parts; peak_memory_gb is the process's peak so far."""

    epoch: int
    step: int
    loss: float
    top1_error: float
    top5_error: float
    val_loss: float | None
    val_top1_error: float | None
    val_top5_error: float | None
    learning_rate: float
    images_per_second: float
    train_seconds: float
    validation_seconds: float
    seconds: float
    peak_memory_gb: float

    def line(self, epochs: int) -> str:
        """The epoch's line on the console."""
        line = (f"epoch {self.epoch}/{epochs}: loss {self.loss:.4f}, top-1 error {self.top1_error:.2%}, "
                f"top-5 error {self.top5_error:.2%}")
        if self.val_loss is not None:
            line += (f" | val loss {self.val_loss:.4f}, top-1 error {self.val_top1_error:.2%}, "
                     f"top-5 error {self.val_top5_error:.2%}")
        return (f"{line} | lr {self.learning_rate:.3g}, {self.images_per_second:.1f} img/s, "
                f"{self.train_seconds:.0f} s + validation {self.validation_seconds:.0f} s, "
                f"peak memory {self.peak_memory_gb:.1f} GB")


HISTORY_COLUMNS = tuple(field.name for field in dataclasses.fields(HistoryRow))


def append_history(path: Path, row: HistoryRow) -> None:
    """Appends one epoch's row (HISTORY_COLUMNS; None as an empty cell) to the history CSV, header first."""
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(HISTORY_COLUMNS)
        writer.writerow(["" if value is None else value for value in dataclasses.astuple(row)])


def read_history(run_dir) -> list[HistoryRow]:
    """history.csv's rows, one per epoch in order: the last row written for an epoch that a resume ran again; a
    line cut short by a crash is left out."""
    rows = {}
    with open(Path(run_dir) / rundir.HISTORY, newline="") as f:
        for cells in csv.DictReader(f):
            if None in cells or any(cells.get(c) is None for c in HISTORY_COLUMNS):
                continue  # a partial last line
            values = {c: (int(v) if c in ("epoch", "step") else float(v)) if v else None for c, v in cells.items()}
            rows[values["epoch"]] = HistoryRow(**values)
    return [rows[e] for e in sorted(rows)]
