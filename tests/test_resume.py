"""A run killed with SIGKILL resumes with its weights, momentum, learning-rate schedule and best model, and draws
the randomness an uninterrupted run draws."""

import signal
import time

import numpy as np
import pytest

from alexnet import rundir, tags
from alexnet.records import BestEpoch
from alexnet.rundir import RunDir
from alexnet.studies import report
from alexnet.training import driver
from alexnet.training.driver import train_and_evaluate
from helpers import TINY, backup_positions, run_cli, scalars, steps, tiny_config

pytestmark = pytest.mark.slow  # trainings in subprocesses or in this process

EPOCHS, STEPS = 4, 6
# The learning rate changes at every epoch (divided by 10), so a resume that lost the schedule shows.
SCHEDULE = ["train.schedule=step", "train.step_epochs=1", "train.learning_rate=0.01", "train.warmup_epochs=0"]


def kill_in_the_second_epoch(args, run_dir):
    """Starts training in a subprocess and SIGKILLs it after a mid-epoch backup of the second epoch."""
    proc = run_cli(args)
    deadline = time.time() + 240
    while time.time() < deadline and not any(epoch == 1 and step >= 1 for epoch, step in backup_positions(run_dir)):
        time.sleep(0.05)
    if time.time() >= deadline:
        proc.kill()
        pytest.fail("no mid-epoch backup appeared: " + "".join(proc.communicate()))
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_resume_after_sigkill(small_data, tmp_path, capsys, monkeypatch):
    overrides = [*TINY, f"data.dir={small_data}", f"train.epochs={EPOCHS}", "train.global_batch_size=8",
                 f"train.steps_per_epoch={STEPS}", "train.backup_every_steps=2", "tensorboard.histograms=false",
                 *SCHEDULE]
    run_dir = tmp_path / "resume"
    kill_in_the_second_epoch(["train", "--logs", str(tmp_path), "--run", "resume", *overrides], run_dir)
    assert not (run_dir / rundir.FINAL_METRICS).exists()
    best_before = BestEpoch.read(run_dir / rundir.BEST_RECORD)
    assert best_before.epoch == 1

    # The same command again, in this process, watching what the backup restores.
    restored = {}

    def spy(model, backup):
        original(model, backup)
        restored["iterations"] = int(model.optimizer.iterations.numpy())
        restored["momentum"] = [np.asarray(v) for v in model.optimizer.momentums]
        restored["position"] = backup.position

    original = driver.restore
    monkeypatch.setattr(driver, "restore", spy)
    config = tiny_config(small_data, *overrides[len(TINY) + 1 :])
    train_and_evaluate(config, run_dir)
    output = capsys.readouterr().out
    assert f"epoch {EPOCHS}/{EPOCHS}:" in output and "epoch 1/" not in output  # resumed, not restarted
    # At the step backed up, inside the second epoch: its first steps are not trained again.
    epoch, step = restored["position"].epoch, restored["position"].step
    assert epoch == 1 and step >= 1 and f"resumed at epoch 2, step {step}" in output

    # The optimizer's step count and its momentum slots come back (a fresh optimizer has zeros).
    assert restored["iterations"] == STEPS + step
    assert all(np.any(m != 0) for m in restored["momentum"])

    # Every epoch ran at its scheduled rate, the resumed ones included.
    train_series, val = scalars(run_dir / rundir.TRAIN_EVENTS), scalars(run_dir / rundir.VALIDATION_EVENTS)
    epoch_rates = [rate for _, rate in train_series[tags.epoch(tags.LEARNING_RATE)]]
    np.testing.assert_allclose(epoch_rates, [0.01 * 0.1**e for e in range(EPOCHS)], rtol=1e-5)
    step_rates = {round(rate, 9) for _, rate in train_series[tags.LEARNING_RATE]}
    assert step_rates == {round(0.01 * 0.1**e, 9) for e in range(EPOCHS)}

    # TensorBoard series continue without duplicate steps, and no epoch is missing.
    for series in (train_series, val):
        for tag, events in series.items():
            seen = steps(events)
            assert seen == sorted(set(seen)), f"{tag} has duplicate or decreasing steps: {seen}"
    batch_steps = steps(train_series[tags.LOSS])
    assert batch_steps == list(range(1, EPOCHS * STEPS + 1)), batch_steps  # every step once
    assert len(val[tags.epoch(tags.TOP1_ERROR)]) == EPOCHS and batch_steps[-1] >= EPOCHS * STEPS

    # The best model of before the kill is kept unless a later epoch was strictly better.
    best = BestEpoch.read(run_dir / rundir.BEST_RECORD)
    assert best.val_top1_error <= best_before.val_top1_error
    if best.val_top1_error == best_before.val_top1_error:
        assert best == best_before
    assert (run_dir / rundir.BEST_MODEL).exists() and (run_dir / rundir.EXPORT / "saved_model.pb").exists()
    # The report page marks the drops the logged rates show: after every epoch but the last.
    page = report.write_report(run_dir).read_text()
    assert "Learning rate divided by 10 after epoch(s) 1, 2, 3 (dotted lines)." in page


def test_a_deterministic_run_killed_after_an_epoch_resumes_to_the_uninterrupted_runs_losses(small_data, tmp_path):
    """The shuffle, crops and flips of epoch e come from (seed, e), the dropout masks and colour noise from
    (seed, step): a process that starts at epoch 2 draws what the first process would have drawn there."""
    args = ["--logs", str(tmp_path), *TINY, f"data.dir={small_data}", "train.epochs=3", "train.global_batch_size=8",
            "train.steps_per_epoch=6", "train.deterministic=true", "train.seed=3", "tensorboard.histograms=false",
            "tensorboard.images=false", "tensorboard.layer_stats_steps=0"]
    proc = run_cli(["train", "--run", "whole", *args])
    assert proc.wait(timeout=300) == 0, proc.communicate()
    proc = run_cli(["train", "--run", "killed", *args])
    deadline = time.time() + 240
    while time.time() < deadline and (1, 0) not in backup_positions(tmp_path / "killed"):
        time.sleep(0.05)  # epoch 1's end is backed up (written behind the step, committed by its manifest)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / rundir.FINAL_METRICS).exists()
    resumed = run_cli(["train", "--run", "killed", *args])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-2000:] + err[-2000:]
    assert "epoch 1/3" not in out  # it resumed
    whole, killed = (RunDir(tmp_path / name).history() for name in ("whole", "killed"))
    assert [row.epoch for row in killed] == [1, 2, 3]
    for key in ("loss", "val_loss", "top1_error", "val_top1_error", "learning_rate"):
        np.testing.assert_allclose([getattr(row, key) for row in killed], [getattr(row, key) for row in whole],
                                   rtol=1e-4, err_msg=key)
