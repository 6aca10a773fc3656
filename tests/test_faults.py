"""The faults a long run meets, each driven through the command line as a job controller meets it: exit
statuses, the one-line messages, and what is left in the run directory.

    two processes, one run       the second stops at once (5); a lock left by a dead process is taken over
    a diverging loss             stopped at that step (6); the backups and best model stay finite
    SIGTERM / SIGINT             the step finishes, a backup records it, 143 / 130; the same command resumes there
    SIGKILL mid-epoch            timed backups: the same command resumes at the step backed up
    a damaged backup             named, and the one before is used; with none left, a clear error (3)
    a full disk                  one line naming the path and the space (7); the backup before still loads
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from alexnet import rundir
from alexnet.errors import RunBusyError
from alexnet.export import load_best_model
from alexnet.rundir import RunDir, RunLock
from alexnet.training.checkpoints import find_backup, restore
from helpers import ROOT, TINY, backup_positions, cli, run_cli

pytestmark = pytest.mark.slow  # trainings in subprocesses

QUIET = ["tensorboard.histograms=false", "tensorboard.images=false", "tensorboard.layer_stats_steps=0"]


def train_args(small_data, logs, run, *extra):
    """`python -m alexnet train` of the tiny network on small_data into logs/run: 15 steps of 8 an epoch."""
    return ["train", "--logs", str(logs), "--run", run, *TINY, f"data.dir={small_data}", "train.global_batch_size=8",
            "train.steps_per_epoch=15", *QUIET, *extra]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def wait_until(condition, proc, seconds=240):
    """Polls condition() every 50 ms; fails the test (with the process's output) if it never holds."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the condition never held: " + "".join(proc.communicate()))


def epoch_losses(run_dir) -> dict:
    """{column: [value per epoch]} of the training and validation losses and errors in history.csv."""
    rows = RunDir(run_dir).history()
    return {key: [getattr(row, key) for row in rows] for key in ("loss", "val_loss", "top1_error", "val_top1_error")}


# ----- one writer per run directory -----


def test_a_second_train_into_a_live_run_stops_at_once_and_the_first_run_keeps_every_epoch_once(small_data, tmp_path):
    args = train_args(small_data, tmp_path, "busy", "train.epochs=3")
    first = run_cli(args)
    wait_until(lambda: (tmp_path / "busy" / rundir.LOCK).exists(), first)
    started = time.time()
    code, out, err = cli(args)
    assert code == 5 and time.time() - started < 60, (code, err)
    (line,) = error_lines(err)
    assert line.startswith(f"error: run {tmp_path / 'busy'} is being trained by process {first.pid} on host "
                           f"{socket.gethostname()} (since "), line
    assert "wait for it to finish or stop it, or train under another RUN=name" in line
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert [row.epoch for row in RunDir(tmp_path / "busy").history()] == [1, 2, 3]
    assert not (tmp_path / "busy" / rundir.LOCK).exists()  # released when the run ended


def test_a_lock_left_by_a_dead_process_is_taken_over(small_data, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended: nothing runs under that id and start time
    run = tmp_path / "orphan"
    run.mkdir()
    (run / rundir.LOCK).write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "process_start": "1",
                                               "since": "2026-12-04T00:00:00+00:00"}))
    code, out, err = cli(train_args(small_data, tmp_path, "orphan", "train.epochs=1"))
    assert code == 0, err[-2000:]
    assert (f"run {run}: took over the lock left by process {pid} on host {socket.gethostname()}, which is no longer "
            f"running") in out


def test_a_lock_from_another_host_is_held_while_it_is_refreshed_and_taken_over_when_it_is_not(tmp_path):
    """On a file system shared between hosts a process id says nothing: the holder's heartbeat does."""
    lock = tmp_path / rundir.LOCK
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "process_start": "1", "since": "then"}))
    with pytest.raises(RunBusyError, match="is being trained by process 1 on host elsewhere"), RunLock(tmp_path):
        pass
    stale = time.time() - RunLock.STALE_SECONDS - 5
    os.utime(lock, (stale, stale))
    with RunLock(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


# ----- divergence -----


def test_a_diverging_run_stops_at_that_step_with_its_own_code_and_keeps_its_finite_backups(small_data, tmp_path):
    run = tmp_path / "diverge"
    # One good epoch first (it stops at its end on SIGTERM), then the same run at a rate that explodes.
    good = run_cli(train_args(small_data, tmp_path, "diverge", "train.epochs=3"))
    wait_until(lambda: (run / rundir.HISTORY).exists(), good)
    good.send_signal(signal.SIGTERM)
    assert good.wait(timeout=120) == 143
    before = {p.name: p.read_bytes() for p in (run / rundir.BACKUP).iterdir()}
    best_before = (run / rundir.BEST_MODEL).read_bytes()
    code, out, err = cli(train_args(small_data, tmp_path, "diverge", "train.epochs=3", "train.learning_rate=1000",
                                    "train.warmup_epochs=0"))
    assert code == 6, (out[-2000:], err[-2000:])
    (line,) = error_lines(err)
    assert line.startswith("error: training diverged at step ") and " (epoch 2, its step " in line, line
    assert "at learning rate 1e+03. Lower train.learning_rate" in line and "the training loss is " in line
    # Nothing of the diverged steps was saved: the backups and the best model are those of before.
    assert {p.name: p.read_bytes() for p in (run / rundir.BACKUP).iterdir()} == before
    assert (run / rundir.BEST_MODEL).read_bytes() == best_before
    backup = find_backup(run / rundir.BACKUP)
    model = load_best_model(RunDir(run))
    restore(model, backup)
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights)
    # The run's page still renders (every reporter copes with what a diverged run leaves).
    code, out, err = cli(["report", "--logs", str(tmp_path), "--run", "diverge"])
    assert code == 0 and (run / "report.html").exists(), err[-2000:]


# ----- preemption and kills -----


# Two deterministic epochs (the same order, crops and masks in every run), backed up every 4 steps.
DETERMINISTIC = ["train.epochs=2", "train.deterministic=true", "train.seed=5", "train.backup_every_steps=4"]


@pytest.fixture(scope="module")
def uninterrupted(small_data, tmp_path_factory):
    """epoch_losses of the DETERMINISTIC run trained without a stop: what every stopped and resumed run must equal."""
    logs = tmp_path_factory.mktemp("uninterrupted")
    code, _, err = cli(train_args(small_data, logs, "whole", *DETERMINISTIC))
    assert code == 0, err[-2000:]
    return epoch_losses(logs / "whole")


@pytest.mark.parametrize("signal_number, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_backs_it_up_and_the_same_command_resumes_there(small_data, tmp_path, uninterrupted,
                                                                                   signal_number, code):
    """The interrupted run's epoch losses equal the uninterrupted one's."""
    args = train_args(small_data, tmp_path, "stopped", *DETERMINISTIC)
    proc = run_cli(args)
    history = tmp_path / "stopped" / rundir.HISTORY
    wait_until(lambda: history.exists(), proc)  # the first epoch is done: stop in the second, between backups
    proc.send_signal(signal_number)
    sent = time.time()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and time.time() - sent < 30, (proc.returncode, err[-2000:])
    (line,) = error_lines(err)
    name = signal.Signals(signal_number).name
    assert line.startswith(f"error: stopped by {name} ") and "run the same command again to resume" in line, line
    stop = re.search(r"after step \d+ \(epoch (\d+), its step (\d+)\)|at the end of epoch (\d+)", line)
    epoch, step = (int(stop[1]), int(stop[2])) if stop[1] else (int(stop[3]) + 1, 0)
    resumed_code, out, err = cli(args)
    assert resumed_code == 0, err[-2000:]
    assert f"resumed at epoch {epoch}, step {step} " in out and "epoch 1/2" not in out, out
    stopped = epoch_losses(tmp_path / "stopped")
    for key in uninterrupted:
        np.testing.assert_allclose(stopped[key], uninterrupted[key], rtol=1e-4, err_msg=key)


def test_sigkill_between_timed_backups_resumes_inside_the_epoch_at_the_last_ones_step(small_data, tmp_path,
                                                                                      uninterrupted):
    """Backups by time alone (no step count): killed after one inside epoch 2, the run resumes at its step."""
    args = train_args(small_data, tmp_path, "killed", *DETERMINISTIC, "train.backup_every_steps=0",
                      "train.backup_every_seconds=0.2")
    proc = run_cli(args)
    wait_until(lambda: any(epoch == 1 and step >= 1 for epoch, step in backup_positions(tmp_path / "killed")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch, step = backup_positions(tmp_path / "killed")[-1]  # the newest: what the same command resumes from
    assert epoch == 1 and 0 < step < 15, backup_positions(tmp_path / "killed")
    code, out, err = cli(args)
    assert code == 0, err[-2000:]
    assert f"resumed at epoch 2, step {step} " in out, out
    killed = epoch_losses(tmp_path / "killed")
    for key in uninterrupted:
        np.testing.assert_allclose(killed[key], uninterrupted[key], rtol=1e-4, err_msg=key)
    assert [row.epoch for row in RunDir(tmp_path / "killed").history()] == [1, 2]  # every epoch once


# ----- damaged backups -----


def test_a_damaged_backup_is_named_and_the_one_before_is_used_and_with_none_left_the_error_says_what_to_do(
        small_data, tmp_path):
    args = train_args(small_data, tmp_path, "damaged", "train.epochs=3")
    proc = run_cli(args)
    wait_until(lambda: len(backup_positions(tmp_path / "damaged")) == 2, proc)  # the ends of epochs 1 and 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    weights = sorted((tmp_path / "damaged" / rundir.BACKUP).glob("step-*.npz"))
    newest = weights[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # cut short, as a crash mid-write would
    kept = {p: p.read_bytes() for p in weights}
    code, out, err = cli(args)
    assert code == 0, err[-2000:]
    assert f"backup {newest.with_suffix('')} is damaged ({newest.name} has " in out
    assert "resumed at epoch 2, step 0" in out

    # Every backup damaged: named, and the run stops with what to do rather than silently starting over.
    (tmp_path / "damaged" / rundir.FINAL_METRICS).unlink()
    shutil.rmtree(tmp_path / "damaged" / rundir.BACKUP, ignore_errors=True)
    (tmp_path / "damaged" / rundir.BACKUP).mkdir()
    for path, content in kept.items():
        path.write_bytes(content[:100])
        shutil.copy(ROOT / "README.md", path.with_suffix(".json"))  # not JSON
    code, out, err = cli(args)
    assert code == 3, err[-2000:]
    (line,) = error_lines(err)
    assert line.startswith(f"error: every backup in {tmp_path / 'damaged' / rundir.BACKUP} is damaged") and \
        "move that folder aside to train the run again from its start" in line, line
    assert "Traceback" not in err


# ----- a full disk -----


def small_filesystem(path, megabytes: int) -> bool:
    """Mounts a tmpfs of that size at path (root on Linux); whether it did."""
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_is_named_with_its_code_and_the_backup_before_still_loads(small_data, tmp_path):
    logs = tmp_path / "small"
    if not small_filesystem(logs, 64):
        pytest.fail("this test needs a small tmpfs (mount -t tmpfs, as root) to fill")
    try:
        args = train_args(small_data, logs, "full", "train.epochs=3")
        proc = run_cli(args)
        wait_until(lambda: len(backup_positions(logs / "full")) == 1, proc)
        filler = logs / "filler"
        with open(filler, "wb") as f:  # everything that is left
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 7, (out[-2000:], err[-3000:])
        (line,) = error_lines(err)
        assert line.startswith(f"error: no space left on the device holding {logs / 'full'}") and \
            "MB are free): free space there or train with another --logs" in line, line
        assert "Traceback" not in err
        backup = find_backup(logs / "full" / rundir.BACKUP)
        assert backup is not None and backup.position.epoch >= 1
        filler.unlink()
        code, out, err = cli(args)  # space again: the same command resumes and completes
        assert code == 0 and "resumed at epoch " in out, err[-2000:]
    finally:
        subprocess.run(["umount", str(logs)], capture_output=True)
