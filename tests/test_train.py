"""Training: what a finished run holds, the precisions and XLA, MirroredStrategy on two CPU devices."""

import json
import urllib.parse

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet import rundir
from alexnet.config import WEIGHTED_LAYERS, load_config
from alexnet.data.pipeline import training_sample
from alexnet.metrics import errors_of
from alexnet.training.driver import build_model
from alexnet.training.history import read_history
from helpers import TINY, all_tags, cli, http_get, scalars, steps, tensorboard_server, tiny_config, wait_for

pytestmark = pytest.mark.slow  # trainings in subprocesses or in this process


def test_a_finished_run_holds_every_entry_of_the_run_directory(tiny_run, small_data):
    config = load_config(tiny_run / rundir.CONFIG)
    assert (config.train.epochs, config.train.steps_per_epoch, config.data.dir) == (1, 2, str(small_data))
    class_names = json.loads((tiny_run / rundir.CLASSES).read_text())
    assert class_names == sorted(p.name for p in (small_data / "train").iterdir())
    final = json.loads((tiny_run / rundir.FINAL_METRICS).read_text())
    best = json.loads((tiny_run / rundir.BEST_RECORD).read_text())
    assert {k: final[k] for k in best} == best
    # The wall time holds fit, which holds the steps and the validation; memory is the process's peak.
    assert final["wall_seconds"] > final["fit_seconds"] > final["train_seconds"] + final["validation_seconds"] > 0
    assert final["validation_seconds"] > 0 and 0.1 < final["peak_memory_gb"] < 8
    info = json.loads((tiny_run / rundir.RUN_INFO).read_text())
    assert info["data"] == {"source": "demo", "name": None, "dir": str(small_data), "classes": 10,
                            "train_images": 120, "val_images": 30}
    assert info["versions"]["tensorflow"] == tf.__version__ and info["resumes"] == 0 and info["machine"]["cpus"] >= 1
    assert info["command"] == "train_and_evaluate() called from Python"  # the fixture trains in this process
    (row,) = read_history(tiny_run)  # one epoch: one row
    assert (row.epoch, row.step) == (1, 2) and row.val_top1_error == pytest.approx(best["val_top1_error"])
    assert row.train_seconds == pytest.approx(final["train_seconds"])
    assert row.seconds >= row.train_seconds + row.validation_seconds
    assert 0.1 < row.peak_memory_gb <= final["peak_memory_gb"]
    assert 0.0 <= best["val_top5_error"] <= best["val_top1_error"] <= 1.0
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
    assert final["train_images"] == scored["images"] == 120
    assert final["train_top1_error"] == pytest.approx(scored["top1_error"])
    assert final["overfitting_gap"] == pytest.approx(row.val_top1_error - scored["top1_error"])


def test_a_finished_run_holds_its_tensorboard_series(tiny_run):
    train, val = scalars(tiny_run / rundir.TRAIN_EVENTS), scalars(tiny_run / rundir.VALIDATION_EVENTS)
    for tag in ("loss", "top1_error", "top5_error", "learning_rate", "images_per_second"):
        assert steps(train[tag]) == [1, 2], tag
    for tag in ("epoch_loss", "epoch_top1_error", "epoch_top5_error", "epoch_learning_rate",
                "epoch_images_per_second", "epoch_time", "epoch_train_time", "epoch_validation_time",
                "epoch_peak_memory_gb"):
        assert steps(train[tag]) == [2], tag
    for tag in ("epoch_loss", "epoch_top1_error", "epoch_top5_error"):
        assert steps(val[tag]) == [2], tag
    best = json.loads((tiny_run / rundir.BEST_RECORD).read_text())
    assert val["epoch_top1_error"][0][1] == pytest.approx(best["val_top1_error"])
    root_tags = all_tags(tiny_run)
    assert {"inputs/augmented", "filters/conv1", "config", "final/top1_error", "final/top5_error"} <= root_tags
    assert "_hparams_/session_start_info" in root_tags
    assert any(t.startswith("weights/conv1/kernel") for t in root_tags)
    # Per-layer statistics every tensorboard.layer_stats_steps (50) steps: at step 0 in a 2-step run.
    for name in WEIGHTED_LAYERS:
        for statistic in ("activation_rms", "image_spread", "dead_fraction", "gradient_norm", "weight_norm"):
            assert steps(train[f"layers/{name}/{statistic}"]) == [0], (name, statistic)


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
    assert steps(scalars(tmp_path / "mirrored" / rundir.TRAIN_EVENTS)["loss"]) == [1, 2, 3]
    info = json.loads((tmp_path / "mirrored" / rundir.RUN_INFO).read_text())
    assert info["command"].startswith("python -m alexnet train --logs") and info["machine"]["replicas"] == 2
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
    assert [m["name"]["tag"] for m in experiment["metricInfos"]] == ["final/top1_error", "final/top5_error"]
    request = {"startIndex": 0, "sliceSize": 10, "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"]}
    groups = json.loads(http_get(url + "data/plugin/hparams/session_groups?request="
                                 + urllib.parse.quote(json.dumps(request))))["sessionGroups"]
    (group,) = [g for g in groups if g["name"] == tiny_run.name]
    assert group["hparams"]["model.variant"] == "paper" and group["hparams"]["train.epochs"] == 1
    best = json.loads((tiny_run / rundir.BEST_RECORD).read_text())
    (top1,) = [m["value"] for m in group["metricValues"] if m["name"]["tag"] == "final/top1_error"]
    assert top1 == pytest.approx(best["val_top1_error"])


def test_tensorboard_says_the_training_errors_are_read_in_training_mode(tiny_run):
    """Through the Scalars plugin's own HTTP API: the training loss and errors carry what they are, the
    validation ones do not need to."""
    url = tensorboard_server(tiny_run.parent)
    tags = wait_for(lambda: json.loads(http_get(url + "data/plugin/scalars/tags")).get(f"{tiny_run.name}/train"))
    for tag in ("loss", "top1_error", "epoch_top1_error", "epoch_top5_error"):
        assert "Training mode: averaged over the steps, with dropout and augmentation on" in tags[tag]["description"]
    assert tags["learning_rate"]["description"] == ""
    validation = json.loads(http_get(url + "data/plugin/scalars/tags"))[f"{tiny_run.name}/validation"]
    assert validation["epoch_top1_error"]["description"] == ""
