"""Backups written behind the training step: the snapshot, the background writer, the backup file and the best
model written from a snapshot, and a kill during a write."""

import signal
import subprocess
import sys
import textwrap
import threading
import time

import keras
import numpy as np
import pytest

from alexnet import rundir
from alexnet.errors import DataError, DiskFullError
from alexnet.records import BestEpoch
from alexnet.rundir import RunDir
from alexnet.training.checkpoints import BestModel, find_backup, restore, write_backup
from alexnet.training.snapshots import BackgroundWriter, HostCopy, Position, state_variables, take_snapshot
from helpers import ROOT


def small_model(units: int = 3, seed: int = 1) -> keras.Model:
    """A compiled two-layer model with dropout (a random stream's state) and a trained optimizer slot."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.5),
                              keras.layers.Dense(units, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.random.default_rng(seed).normal(size=(16, 4)), np.arange(16) % units, epochs=1, verbose=0)
    return model


def state(model: keras.Model) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in [*model.variables, *model.optimizer.variables]]


def test_a_snapshot_is_a_copy_the_training_step_can_change_after(tmp_path):
    model = small_model()
    groups = state_variables(model)
    before = [keras.ops.convert_to_numpy(v) for group in ("weights", "states", "optimizer") for v in groups[group]]
    snapshot = take_snapshot(model, HostCopy(model), Position(1, 2), 7)
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)  # training goes on
    model.optimizer.momentums[0].assign(model.optimizer.momentums[0] + 1.0)
    arrays = [array for _, array in snapshot.named_arrays()]
    assert len(arrays) == len(before) and len(groups["states"]) == 1  # the dropout layer's seed generator
    for got, want in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(got, want)  # as they were at the snapshot
    assert set(snapshot.metrics) == {v.path for v in model.metrics_variables}


def test_a_backup_restores_every_variable_and_refuses_another_network(tmp_path):
    model = small_model()
    expected = state(model)
    path = write_backup(take_snapshot(model, HostCopy(model), Position(1, 2), 7), tmp_path)
    assert path.name == "step-000000007.npz" and not list(tmp_path.glob(".*partial*"))
    backup = find_backup(tmp_path)
    assert backup.position == Position(1, 2) and backup.weights == path
    fresh = small_model(seed=2)
    restore(fresh, backup)
    for got, want in zip(state(fresh), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(DataError, match=r"holds another network \(4 weights variables for the model's 4, or other "
                                        r"shapes\): the run's config was changed"):
        restore(small_model(units=5), backup)


def test_only_the_two_newest_backups_are_kept_and_a_partial_file_left_by_a_kill_goes(tmp_path):
    model = small_model()
    (tmp_path / ".step-000000003.partial.npz").write_bytes(b"half")
    for step in (1, 2, 3):
        write_backup(take_snapshot(model, HostCopy(model), Position(0, step), step), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000000002.json", "step-000000002.npz", "step-000000003.json", "step-000000003.npz"]


def test_the_writer_runs_one_write_at_a_time_and_hands_its_error_to_the_training_thread():
    writer = BackgroundWriter()
    release, events = threading.Event(), []

    def first():
        release.wait(5)
        events.append("first done")

    writer.submit(first)
    submitted = threading.Thread(target=lambda: (writer.submit(lambda: events.append("second")), events.append("in")))
    submitted.start()
    time.sleep(0.2)
    assert events == []  # the second write waits for the first to commit
    release.set()
    submitted.join(5)
    writer.wait()
    assert events[0] == "first done" and set(events[1:]) == {"second", "in"} and writer.waited_seconds >= 0.15

    def full():
        raise DiskFullError("no space left on the device holding x")

    writer.submit(full)
    with pytest.raises(DiskFullError, match="no space left"):
        writer.wait()
    writer.wait()  # raised once


def test_the_best_model_is_the_snapshots_weights_written_while_the_model_trains_on(tmp_path):
    model = small_model()
    best = BestModel(RunDir(tmp_path))
    chosen = best.choose(2, {"loss": 1.0, "val_loss": 1.0, "top1": 0.5, "top5": 1.0, "val_top1": 0.75,
                             "val_top5": 1.0})
    snapshot = take_snapshot(model, HostCopy(model), Position(3, 0), 12)
    images = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    model.layers[0].kernel.assign(model.layers[0].kernel * 2.0)  # the next epoch trains
    best.write(snapshot, chosen)
    saved = keras.saving.load_model(tmp_path / rundir.BEST_MODEL, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(saved(images, training=False)), expected, rtol=1e-6)
    # Compiled as the run's model, without the optimizer's state (the backups hold that): a fresh optimizer.
    assert int(model.optimizer.iterations) == 1 and int(saved.optimizer.iterations) == 0
    assert BestEpoch.read(tmp_path / rundir.BEST_RECORD).epoch == 3
    assert BestModel(RunDir(tmp_path)).best == pytest.approx(0.25)  # a resumed run starts from the record


KILLED_WRITE = textwrap.dedent("""
    import sys, time, numpy as np
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from test_backups import small_model
    from alexnet.training import snapshots
    from alexnet.training.checkpoints import write_backup
    from alexnet.training.snapshots import BackgroundWriter, HostCopy, Position, take_snapshot

    folder, model = Path(sys.argv[1]), small_model()
    host = HostCopy(model)
    write_backup(take_snapshot(model, host, Position(0, 1), 1), folder)  # the backup a kill must leave loadable
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)

    def slow_write(member, array, allow_pickle):  # the first array written, then the write stalls until the kill
        member.write(array.tobytes())
        print("writing", flush=True)
        time.sleep(60)

    snapshots.np.lib.format.write_array = slow_write
    writer = BackgroundWriter()
    writer.submit(lambda: write_backup(take_snapshot(model, host, Position(0, 2), 2), folder))
    writer.wait()
""")


@pytest.mark.slow  # a process with TensorFlow, killed
def test_a_kill_during_a_write_leaves_the_previous_backup_loadable(tmp_path):
    script = tmp_path / "write.py"
    script.write_text(KILLED_WRITE)
    folder = tmp_path / "backup"
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(ROOT / "tests")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "writing", proc.communicate()
    assert (folder / ".step-000000002.partial.npz").exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    backup = find_backup(folder)
    assert backup.position == Position(0, 1)  # the partial file is no backup
    model = small_model(seed=3)
    restore(model, backup)
    np.testing.assert_array_equal(state(model)[0], state(small_model())[0])


def test_a_backup_of_the_earlier_format_still_restores(tmp_path):
    """Backups written by model.save_weights (`step-N.weights.h5`) before the npz format: a run stopped then
    resumes with this version."""
    from alexnet.records import BackupManifest, now
    from alexnet.training.checkpoints import file_sha256

    model = small_model()
    weights = tmp_path / "step-000000001.weights.h5"
    model.save_weights(weights)
    BackupManifest(weights=weights.name, epoch=0, step=1, global_step=1, bytes=weights.stat().st_size,
                   sha256=file_sha256(weights), metrics={}, saved=now()).write(tmp_path / "step-000000001.json")
    fresh = small_model(seed=2)
    restore(fresh, find_backup(tmp_path))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fresh.layers[0].kernel),
                                  keras.ops.convert_to_numpy(model.layers[0].kernel))
