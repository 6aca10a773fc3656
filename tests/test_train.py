"""Training: what a finished run holds, the precisions and XLA, MirroredStrategy on two CPU devices."""

import json
import urllib.parse

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.config import WEIGHTED_LAYERS, load_config
from alexnet.data.pipeline import training_sample
from alexnet.metrics import errors_of
from alexnet.records import BestEpoch, DataInfo
from alexnet.rundir import RunDir
from alexnet.training.driver import build_model, train_and_evaluate
from helpers import TINY, all_tags, cli, http_get, scalars, steps, tensorboard_server, tiny_config, wait_for

pytestmark = pytest.mark.slow  # trainings in subprocesses or in this process


def test_a_finished_run_holds_every_entry_of_the_run_directory(tiny_run, small_data):
    config = load_config(tiny_run / rundir.CONFIG)
    assert (config.train.epochs, config.train.steps_per_epoch, config.data.dir) == (1, 2, str(small_data))
    run = RunDir(tiny_run)
    class_names = run.class_names()
    assert class_names == sorted(p.name for p in (small_data / "train").iterdir())
    final = run.final_metrics()
    assert final.best == BestEpoch.read(tiny_run / rundir.BEST_RECORD)
    assert final.parameters == keras.saving.load_model(tiny_run / rundir.BEST_MODEL).count_params()
    assert final.precision == "float32"  # tiny_config's
    # The wall time holds fit, which holds the steps and the validation; memory is the process's peak.
    assert final.wall_seconds > final.fit_seconds > final.train_seconds + final.validation_seconds > 0
    assert final.validation_seconds > 0 and 0.1 < final.peak_memory_gb < 8
    info = run.info()
    assert info.data == DataInfo("demo", None, str(small_data), 10, 120, 30)
    made = info.provenance
    assert made.versions["tensorflow"] == tf.__version__ and info.resumes == 0 and made.machine.cpus >= 1
    assert made.command.startswith("called from Python: ")  # the fixture trains in this process
    assert made.machine.processor and made.date == info.last_start
    (row,) = run.history()  # one epoch: one row
    assert (row.epoch, row.step) == (1, 2) and row.val_top1_error == pytest.approx(final.best.val_top1_error)
    assert row.train_seconds == pytest.approx(final.train_seconds)
    assert row.seconds >= row.train_seconds + row.validation_seconds
    assert 0.1 < row.peak_memory_gb <= final.peak_memory_gb
    assert 0.0 <= final.best.val_top5_error <= final.best.val_top1_error <= 1.0
    assert not (tiny_run / rundir.LR_SCHEDULE).exists()  # the plateau rule's state: "paper" runs alone
    assert not (tiny_run / rundir.BACKUP).exists()
    assert (tiny_run / rundir.EXPORT / "saved_model.pb").exists()
    assert list((tiny_run / rundir.PROFILE).rglob("*.xplane.pb")), "no profiler trace"
    model = keras.saving.load_model(tiny_run / rundir.BEST_MODEL, safe_mode=True)
    assert model.output.shape[-1] == len(class_names)
    # The final weights (one epoch: the best model's) on the 120 training images, eval crops, inference mode.
    batches = list(training_sample(config.data, config.model.image_size, 8, 120))
    scored = errors_of(np.concatenate([model(images, training=False) for images, _ in batches]),
                       np.concatenate([labels for _, labels in batches]))
    assert final.fitted.train_images == scored.images == 120
    assert final.fitted.train_top1_error == pytest.approx(scored.top1_error)
    assert final.fitted.overfitting_gap == pytest.approx(row.val_top1_error - scored.top1_error)


def test_a_finished_run_holds_its_tensorboard_series(tiny_run):
    train, val = scalars(tiny_run / rundir.TRAIN_EVENTS), scalars(tiny_run / rundir.VALIDATION_EVENTS)
    for tag in (tags.LOSS, tags.TOP1_ERROR, tags.TOP5_ERROR, tags.LEARNING_RATE, tags.IMAGES_PER_SECOND):
        assert steps(train[tag]) == [1, 2], tag
    for metric in (tags.LOSS, tags.TOP1_ERROR, tags.TOP5_ERROR, tags.LEARNING_RATE, tags.IMAGES_PER_SECOND,
                   tags.TIME, tags.TRAIN_TIME, tags.VALIDATION_TIME, tags.PEAK_MEMORY_GB):
        assert steps(train[tags.epoch(metric)]) == [2], metric
    for metric in (tags.LOSS, tags.TOP1_ERROR, tags.TOP5_ERROR):
        assert steps(val[tags.epoch(metric)]) == [2], metric
    best = BestEpoch.read(tiny_run / rundir.BEST_RECORD)
    assert val[tags.epoch(tags.TOP1_ERROR)][0][1] == pytest.approx(best.val_top1_error)
    root_tags = all_tags(tiny_run)
    finals = {tags.final(tags.TOP1_ERROR), tags.final(tags.TOP5_ERROR)}
    assert {tags.INPUTS, tags.FILTERS, tags.CONFIG, *finals} <= root_tags
    assert "_hparams_/session_start_info" in root_tags
    assert any(t.startswith(tags.weights("conv1/kernel")) for t in root_tags)
    # Per-layer statistics every tensorboard.layer_stats_steps (50) steps: at step 0 in a 2-step run.
    for name in WEIGHTED_LAYERS:
        for statistic in (tags.ACTIVATION_RMS, tags.IMAGE_SPREAD, tags.DEAD_FRACTION, tags.GRADIENT_NORM,
                          tags.WEIGHT_NORM):
            assert steps(train[tags.layer(name, statistic)]) == [0], (name, statistic)


def test_the_final_metrics_name_the_precision_the_convolutions_trained_in(small_data, tmp_path):
    config = tiny_config(small_data, "train.precision=mixed_bfloat16", "tensorboard.images=false",
                         "tensorboard.histograms=false", "tensorboard.layer_stats_steps=0")
    keras.backend.clear_session()
    final = train_and_evaluate(config, tmp_path / "bf16")
    assert final.precision == "mixed_bfloat16" == RunDir(tmp_path / "bf16").final_metrics().precision


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_with_xla_trains_to_a_lower_finite_loss(precision, small_data):
    config = tiny_config(small_data, f"train.precision={precision}", "train.jit_compile=true",
                         "train.learning_rate=0.01", "model.dropout=0", "model.colour_noise=0", "model.zero_fc8=false")
    model = build_model(config, 10, tf.distribute.get_strategy())
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    assert model.get_layer("conv1").compute_dtype == precision.removeprefix("mixed_")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 67, 67, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 8)
    # 24 epochs: with LRN normalising (sums in the paper's units) the tiny network learns this batch more slowly.
    losses = model.fit(images, labels, batch_size=8, epochs=24, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < 0.5 * losses[0], losses  # one fixed batch is learnt


def test_mirrored_strategy_on_two_cpu_devices(small_data, tmp_path):
    code, out, err = cli(["train", "--logs", str(tmp_path), "--run", "mirrored", *TINY, f"data.dir={small_data}",
                          "train.epochs=1", "train.global_batch_size=16", "train.steps_per_epoch=3",
                          "train.strategy=mirrored", "train.cpu_devices=2", "tensorboard.images=false",
                          "tensorboard.histograms=false"])
    assert code == 0, out + err
    assert "strategy MirroredStrategy, 1 worker(s) (this is worker 0, the chief), 2 replica(s), per-replica batch 8, " \
           "global batch 16" in out
    assert steps(scalars(tmp_path / "mirrored" / rundir.TRAIN_EVENTS)[tags.LOSS]) == [1, 2, 3]
    info = RunDir(tmp_path / "mirrored").info()
    assert info.provenance.command.startswith("python -m alexnet train --logs") and info.replicas == 2
    assert (tmp_path / "mirrored" / rundir.EXPORT / "saved_model.pb").exists()


def test_tensorboards_hparams_tab_shows_the_keys_that_tell_runs_apart_and_the_final_errors(tiny_run):
    """Through the HParams plugin's own HTTP API, as the tab reads it: ten typed keys, not the whole config."""
    url = tensorboard_server(tiny_run.parent)
    query = "data/plugin/hparams/experiment?request=" + urllib.parse.quote(json.dumps({"experimentName": ""}))
    experiment = wait_for(lambda: json.loads(http_get(url + query)).get("hparamInfos") and
                          json.loads(http_get(url + query)))
    names = {info["name"]: info for info in experiment["hparamInfos"]}
    assert set(names) == {"model.arch", "model.variant", "model.dropout", "model.lrn", "data.augment",
                          "train.learning_rate", "train.global_batch_size", "train.epochs", "train.schedule",
                          "train.precision"}
    assert names["train.learning_rate"]["type"] == "DATA_TYPE_FLOAT64" and "domainInterval" in names["model.dropout"]
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [tags.final(tags.TOP1_ERROR),
                                                                      tags.final(tags.TOP5_ERROR)]
    request = {"startIndex": 0, "sliceSize": 10, "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"]}
    groups = json.loads(http_get(url + "data/plugin/hparams/session_groups?request="
                                 + urllib.parse.quote(json.dumps(request))))["sessionGroups"]
    (group,) = [g for g in groups if g["name"] == tiny_run.name]
    assert group["hparams"]["model.variant"] == "paper" and group["hparams"]["train.epochs"] == 1
    best = BestEpoch.read(tiny_run / rundir.BEST_RECORD)
    (top1,) = [m["value"] for m in group["metricValues"] if m["name"]["tag"] == tags.final(tags.TOP1_ERROR)]
    assert top1 == pytest.approx(best.val_top1_error)


def test_tensorboard_says_the_training_errors_are_read_in_training_mode(tiny_run):
    """Through the Scalars plugin's own HTTP API: the training loss and errors carry what they are, the
    validation ones do not need to."""
    url = tensorboard_server(tiny_run.parent)
    shown = wait_for(lambda: json.loads(http_get(url + "data/plugin/scalars/tags")).get(f"{tiny_run.name}/train"))
    for tag in (tags.LOSS, tags.TOP1_ERROR, tags.epoch(tags.TOP1_ERROR), tags.epoch(tags.TOP5_ERROR)):
        assert "Training mode: averaged over the steps, with dropout and augmentation on" in shown[tag]["description"]
    assert shown[tags.LEARNING_RATE]["description"] == ""
    validation = json.loads(http_get(url + "data/plugin/scalars/tags"))[f"{tiny_run.name}/validation"]
    assert validation[tags.epoch(tags.TOP1_ERROR)]["description"] == ""
