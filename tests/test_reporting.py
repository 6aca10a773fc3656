"""TensorBoard reporting: weight histograms counted without TensorBoard's one-hot blow-up, the same view; peak memory;
the epoch writers on a diverged network."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from alexnet import tags
from alexnet.rundir import RunDir
from alexnet.training import histograms, memory, pictures, reporting


def written(tmp_path, name, write) -> np.ndarray:
    """The histogram tensor TensorBoard's reader gets back for what write() wrote under tag "h"."""
    directory = tmp_path / name
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        write()
    writer.close()
    accumulator = EventAccumulator(str(directory), size_guidance={"tensors": 0})
    accumulator.Reload()
    assert accumulator.SummaryMetadata("h").plugin_data.plugin_name == "histograms"
    (event,) = accumulator.Tensors("h")
    return tf.make_ndarray(event.tensor_proto)


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).normal(0, 0.01, (300, 41)).astype(np.float32),  # a kernel
    np.random.default_rng(1).uniform(-3, 5, 10_001),
    np.full((7, 3), 0.25, np.float32),  # one value: TensorBoard's special case
    np.zeros(0, np.float32),
    np.array([0.0, 1.0, 1.0, 2.0 - 1e-12, 2.0]),  # values on bucket edges and at the maximum
], ids=["kernel", "uniform", "constant", "empty", "edges"])
def test_histograms_are_the_buckets_tensorboards_own_op_writes(values, tmp_path):
    ours = written(tmp_path, "ours", lambda: histograms.write_histogram("h", values, step=3))
    theirs = written(tmp_path, "theirs", lambda: tf.summary.histogram("h", values, step=3))
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)
    if values.size:
        assert ours[:, 2].sum() == values.size


def test_a_large_kernels_histogram_needs_a_few_chunks_of_memory_not_a_one_hot_matrix(monkeypatch):
    weights = np.random.default_rng(0).normal(0, 0.01, 4_000_000).astype(np.float32)  # 16 MB
    monkeypatch.setattr(histograms, "HISTOGRAM_CHUNK", 1 << 20)
    tracemalloc.start()
    buckets = histograms.histogram_buckets(weights)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert buckets[:, 2].sum() == weights.size
    # A one-hot float64 matrix would take 4M x 30 x 8 = 960 MB; one chunk of float64 and its indices 16 MB.
    assert peak < 40e6, peak


@pytest.mark.slow  # subprocesses
def test_a_process_started_by_a_large_one_reports_its_own_peak_memory():
    held = np.ones(400_000_000 // 8)  # 400 MB, touched, held by this process while it starts another
    code = "from alexnet.training.memory import peak_memory_gb; print(peak_memory_gb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    parent = memory.peak_memory_gb()
    assert held.sum() > 0 and 0.01 < child < parent - 0.3, (child, parent)  # getrusage gave the child >= parent


def test_the_epoch_reporters_cope_with_a_diverged_networks_nan_weights(small_data, tmp_path):
    """A run that diverged before the guard stopped it (train.max_loss_multiple=0 lets a huge loss through)
    leaves NaN weights: histograms, conv1's filters, the layer statistics and the epoch line still write."""
    from alexnet.training.driver import build_model
    from alexnet.training.snapshots import HostCopy, Position, take_snapshot
    from helpers import all_tags, scalars, tiny_config

    assert histograms.histogram_buckets(np.array([1.0, np.nan, 3.0, np.inf]))[:, 2].sum() == 2  # finite ones
    assert histograms.histogram_buckets(np.full(5, np.nan))[:, 2].sum() == 0
    grid = pictures.conv1_filter_grid(np.full((11, 11, 3, 4), np.nan, np.float32))
    assert np.all(np.isfinite(grid))
    config = tiny_config(small_data)
    model = build_model(config, 10, tf.distribute.get_strategy())
    for weight in model.weights:
        if weight.trainable:
            weight.assign(np.full(weight.shape, np.nan, np.float32))
    rng = np.random.default_rng(0)
    sample = (rng.integers(0, 256, (4, 67, 67, 3), dtype=np.uint8), rng.integers(0, 10, 4))
    reporter = reporting.TrainingReporter(tmp_path, config, 8, sample=sample)
    reporter.set_model(model)
    reporter.set_params({"epochs": 1, "steps": 2})
    reporter.on_train_begin()
    reporter.on_epoch_begin(0)
    reporter.on_train_batch_begin(0)
    nan = {"loss": np.nan, "top1": 0.0, "top5": 0.0}
    reporter.on_epoch_end(0, {**nan, **{f"val_{k}": v for k, v in nan.items()}})
    assert np.isnan(RunDir(tmp_path).history()[0].loss)
    # conv1's filters and the histograms come from the epoch's backup snapshot (the backup writer calls this).
    reporter.write_weight_summaries(take_snapshot(model, HostCopy(model), Position(1, 0), 0))
    reporter.on_train_end()
    written = all_tags(tmp_path)
    assert {tags.FILTERS, tags.INPUTS, tags.weights("conv1/kernel")} <= written, written
    assert tags.layer("conv1", tags.ACTIVATION_RMS) in scalars(tmp_path / "train")
