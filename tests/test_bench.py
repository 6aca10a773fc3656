"""`make bench` machinery on a tiny network and data set: every row and ratio is there, table and record agree."""

import re

import pytest
import tensorflow as tf

from alexnet.bench import suite as bench
from alexnet.config import Config
from alexnet.records import BenchResult
from alexnet.rundir import RunDir


@pytest.mark.slow
def test_run_benchmarks_tiny(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")  # as the command line sets it
    config = Config()
    config.train.precision = "float32"  # the rows below whatever train.precision=auto picks on this machine
    config.data.dir = str(tmp_path / "demo")
    config.data.demo_images_per_class = 2
    settings = bench.BenchSettings(width=0.125, batch=4, steps=1, reps=1, pipeline_batches=1, pipeline_warmup=1,
                                   precisions=("float32",), jit=(False, True), large_images=5, run_epochs=1,
                                   run_overrides=("model.width=0.0625", "model.image_size=67", "data.resize_size=74",
                                                  "train.global_batch_size=4", "train.steps_per_epoch=2"))
    config.data.cache = True  # as the demo's config: the input rows must still read and decode the files
    piped = []
    training_batches = bench.training_batches
    monkeypatch.setattr(bench, "training_batches", lambda data, *a: piped.append(data.cache) or training_batches(
        data, *a))
    result = bench.run_benchmarks(config, tmp_path / "logs", settings)

    assert piped and not any(piped), piped  # every timed input pipeline decodes: none served from memory
    assert BenchResult.read(tmp_path / "logs" / "bench.json") == result
    assert result.setup.peers == [] and result.setup.batch == 4
    assert result.provenance.command.startswith("called from Python") and "keras" in result.provenance.versions
    keys = [row.key for row in result.rows]
    assert keys == ["step_float32_xla_off", "step_float32_xla_on", "step_no_lrn", "pipeline_jpeg", "bare_decode_jpeg",
                    "pipeline_jpeg_service", "pipeline_large_jpeg", "bare_decode_large_jpeg", "pipeline_records",
                    "bare_decode_records", "fit_jpeg"]
    for row in result.rows:
        assert row.median > 0 and row.samples == [pytest.approx(row.median, abs=0.01)], row
    ratios = {r.key: r for r in result.ratios}
    assert set(ratios) == {"lrn", "backup_wait", "backup_write", "jpeg_pipeline", "service", "large_jpeg_pipeline",
                           "records_pipeline", "records_speedup", "fit", "run_steps_and_validation", "run_steps"}
    # In steps of the default step: a write takes time; a snapshot's cost is a difference of two timings, which
    # on the tiny network is within their noise, either side of 0.
    assert abs(ratios["backup_wait"].value) < 10 and ratios["backup_write"].value > 0
    final = RunDir(tmp_path / "logs" / "bench_run").final_metrics()
    assert ratios["run_steps"].value == pytest.approx(final.train_seconds / final.wall_seconds)
    assert 0 < ratios["run_steps"].value < ratios["run_steps_and_validation"].value < 1
    memory = {m.key: m for m in result.memory}
    assert memory["peak_default_run"].gb == final.peak_memory_gb and memory["peak_default_run"].target == 4
    assert memory["peak_default_run"].met == (final.peak_memory_gb <= 4)
    assert memory["peak_synthetic_step"].gb > 0.2  # a process of its own: TensorFlow and a network at least
    assert memory["peak_bench"].target == 4 and memory["peak_bench"].met == (memory["peak_bench"].gb <= 4)
    assert ratios["lrn"].target == 0.8 and isinstance(ratios["lrn"].met, bool)
    large = sorted((tmp_path / "logs" / "bench_large_jpegs" / "train").glob("*/*.jpg"))
    assert len(large) == 5
    source = tmp_path / "demo" / "train" / large[0].parent.name / large[0].name
    assert tf.io.extract_jpeg_shape(large[0].read_bytes()).numpy().tolist()[:2] == [
        2 * d for d in tf.io.extract_jpeg_shape(source.read_bytes()).numpy().tolist()[:2]]
    # The timed networks' processes print none of TensorFlow's start-up lines (alexnet/native_logs.py).
    assert not re.search(r"^WARNING: All log messages|oneDNN custom operations", capfd.readouterr().err, re.MULTILINE)
    table = bench.format_table(result)
    assert "train.precision=float32 trains in float32 here (train.precision)" in table
    assert all(row.label in table for row in result.rows)
    assert all(r.label in table for r in result.ratios) and all(m.label in table for m in result.memory)
    assert result.provenance.line() in table
