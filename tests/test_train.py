"""Training end to end on a tiny variant: events, checkpoint, export, resume after SIGKILL, MirroredStrategy."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from alexnet.config import load_config
from alexnet.demo_data import ensure_demo_data
from alexnet.input_pipeline import eval_preprocess
from alexnet.train import train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
# A tiny network built by the same function: 67x67 inputs from 74x74 squares, 1/16 of the widths.
TINY = ["model.width=0.0625", "model.image_size=67", "data.resize_size=74", "model.init=he_normal",
        "model.input_scale=0.015625", "tensorboard.every_steps=1"]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """The demo generator's classes, 12 training and 3 validation images each."""
    root = tmp_path_factory.mktemp("data") / "demo"
    ensure_demo_data(load_config(None, ["data.demo_images_per_class=12", f"data.dir={root}"]).data)
    return root


def scalars(log_dir: Path) -> dict:
    """{tag: [steps in file order]} of all scalar events under log_dir."""
    series: dict = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    series.setdefault(value.tag, []).append(event.step)
    return series


def all_tags(log_dir: Path) -> set:
    return {v.tag for p in log_dir.glob("events.out.tfevents.*") for e in EventFileLoader(str(p)).Load()
            for v in e.summary.value}


def test_one_epoch_end_to_end(small_data, tmp_path):
    overrides = TINY + [f"data.dir={small_data}", "train.epochs=1", "train.global_batch_size=8",
                        "train.steps_per_epoch=2", "tensorboard.profile_steps=0,1"]
    config = load_config(ROOT / "configs" / "demo.yaml", overrides)
    run_dir = tmp_path / "run"
    final = train_and_evaluate(config, run_dir)

    assert load_config(run_dir / "config.yaml") == config
    assert json.loads((run_dir / "classes.json").read_text()) == sorted(p.name for p in (small_data / "train").iterdir())
    assert 0.0 <= final["val_top5_error"] <= final["val_top1_error"] <= 1.0 and final["epoch"] == 1
    assert json.loads((run_dir / "final_metrics.json").read_text())["val_top1_error"] == final["val_top1_error"]
    assert not (run_dir / "backup").exists()

    train, val = scalars(run_dir / "train"), scalars(run_dir / "validation")
    for tag in ("loss", "top1_error", "top5_error", "learning_rate", "images_per_second"):
        assert train[tag] == [1, 2], tag
    for tag in ("epoch_loss", "epoch_top1_error", "epoch_top5_error", "epoch_learning_rate",
                "epoch_images_per_second", "epoch_time"):
        assert train[tag] == [2], tag
    for tag in ("epoch_loss", "epoch_top1_error", "epoch_top5_error"):
        assert val[tag] == [2], tag
    root_tags = all_tags(run_dir)
    assert {"inputs/augmented", "filters/conv1", "config", "final/top1_error", "final/top5_error"} <= root_tags
    assert "_hparams_/session_start_info" in root_tags
    assert any(t.startswith("weights/conv1/kernel") for t in root_tags)
    assert list((run_dir / "profile").rglob("*.xplane.pb")), "no profiler trace"

    # The export, loaded without this project's code, gives the in-memory model's predictions.
    model = keras.saving.load_model(run_dir / "best.keras", safe_mode=True)
    jpegs = sorted((small_data / "val").rglob("*.jpg"))[:4]
    images = np.stack([eval_preprocess(tf.constant(p.read_bytes()), 74, 67).numpy() for p in jpegs])
    expected = np.asarray(model(images, training=False))
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(run_dir / "export")!r})
        serve = loaded.signatures["serve"](images=tf.constant(np.load({str(tmp_path / "images.npy")!r})))
        files = {[str(p) for p in jpegs]!r}
        out = loaded.signatures["classify"](image_bytes=tf.constant([open(f, "rb").read() for f in files]))
        errors = []
        for bad in (np.zeros((1, 67, 67, 3), np.float32), np.zeros((1, 60, 67, 3), np.uint8)):
            try:
                loaded.signatures["serve"](images=tf.constant(bad))
            except Exception as e:
                errors.append(str(e))
        assert not any(m.startswith("alexnet") for m in sys.modules)  # no project code was needed
        print(json.dumps({{"serve": serve["probabilities"].numpy().tolist(),
                           "classes": out["classes"].numpy().tolist(),
                           "names": [[n.decode() for n in row] for row in out["class_names"].numpy()],
                           "probabilities": out["probabilities"].numpy().tolist(), "errors": errors}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["serve"], expected, atol=1e-5)
    top5 = np.argsort(-expected, axis=1)[:, :5]
    np.testing.assert_array_equal(out["classes"], top5)
    np.testing.assert_allclose(out["probabilities"], np.take_along_axis(expected, top5, axis=1), atol=1e-5)
    names = json.loads((run_dir / "classes.json").read_text())
    assert out["names"] == [[names[i] for i in row] for row in top5]
    assert len(out["errors"]) == 2
    assert "expected to be a uint8 tensor but is a float tensor" in out["errors"][0]
    assert "67" in out["errors"][1] and "60" in out["errors"][1]

    # `make export` in a fresh process (loading best.keras needs the custom classes registered) rewrites it.
    (run_dir / "export" / "saved_model.pb").unlink()
    proc = run_cli(["export", "--logs", str(tmp_path), "--run", "run"])
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert (run_dir / "export" / "saved_model.pb").exists()

    # The same command again refuses to overwrite the finished run.
    with pytest.raises(SystemExit, match="already holds a finished run"):
        train_and_evaluate(config, run_dir)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_and_xla_train(small_data, tmp_path, precision):
    overrides = TINY + [f"data.dir={small_data}", "train.epochs=1", "train.global_batch_size=8",
                        "train.steps_per_epoch=2", f"train.precision={precision}", "train.jit_compile=true",
                        "tensorboard.images=false", "tensorboard.histograms=false"]
    final = train_and_evaluate(load_config(ROOT / "configs" / "demo.yaml", overrides), tmp_path / "run")
    assert np.isfinite(final["val_top1_error"])
    model = keras.saving.load_model(tmp_path / "run" / "best.keras", safe_mode=True)
    assert model.get_layer("conv1").compute_dtype == precision.removeprefix("mixed_")


def run_cli(args, **kwargs):
    """`python -m alexnet ARGS` in a fresh process from the repository root, output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "alexnet", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def test_mirrored_strategy_on_two_cpu_devices(small_data, tmp_path):
    args = ["train", "--logs", str(tmp_path), "--run", "mirrored", *TINY, f"data.dir={small_data}", "train.epochs=1",
            "train.global_batch_size=16", "train.steps_per_epoch=3", "train.strategy=mirrored",
            "train.cpu_devices=2", "tensorboard.images=false", "tensorboard.histograms=false"]
    proc = run_cli(args)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert "MirroredStrategy with 2 replica(s), per-replica batch 8, global batch 16" in output
    assert scalars(tmp_path / "mirrored" / "train")["loss"] == [1, 2, 3]
    assert (tmp_path / "mirrored" / "export" / "saved_model.pb").exists()


@pytest.mark.slow
def test_resume_after_sigkill(small_data, tmp_path):
    epochs, steps = 4, 6
    args = ["train", "--logs", str(tmp_path), "--run", "resume", *TINY, f"data.dir={small_data}", f"train.epochs={epochs}",
            "train.global_batch_size=8", f"train.steps_per_epoch={steps}", "train.backup_every_steps=2",
            "tensorboard.histograms=false"]
    run_dir = tmp_path / "resume"
    metadata = run_dir / "backup" / "training_metadata.json"
    proc = run_cli(args)
    deadline = time.time() + 240
    # Kill in the middle of the second epoch, after a mid-epoch backup.
    while time.time() < deadline:
        if metadata.exists():
            try:
                state = json.loads(metadata.read_text())
            except json.JSONDecodeError:
                state = {}
            if state.get("epoch") == 1 and state.get("batch", 0) >= 1:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("no mid-epoch backup appeared: " + proc.communicate()[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "final_metrics.json").exists()

    proc = run_cli(args)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert f"epoch {epochs}/{epochs}:" in output and "epoch 1/" not in output  # resumed, not restarted

    train, val = scalars(run_dir / "train"), scalars(run_dir / "validation")
    for series in (train, val):
        for tag, steps_seen in series.items():
            assert steps_seen == sorted(set(steps_seen)), f"{tag} has duplicate or decreasing steps: {steps_seen}"
    batch_steps = train["loss"]
    assert max(np.diff(batch_steps)) < steps, f"a whole epoch is missing from {batch_steps}"
    assert len(val["epoch_top1_error"]) == epochs
    assert batch_steps[-1] >= epochs * steps, str(batch_steps)
    assert (run_dir / "best.keras").exists() and (run_dir / "export" / "saved_model.pb").exists()
    schedule = json.loads((run_dir / "lr_schedule.json").read_text())
    assert sorted(map(int, schedule)) == list(range(epochs))


@pytest.mark.slow
def test_tiny_variant_learns_the_demo_shapes(tmp_path):
    root = tmp_path / "demo"
    ensure_demo_data(load_config(None, ["data.demo_images_per_class=40", f"data.dir={root}"]).data)
    overrides = [*TINY[:-1], "model.width=0.125", f"data.dir={root}", "train.epochs=20", "train.global_batch_size=16", "train.learning_rate=0.01",
                 "train.schedule=constant", "train.warmup_epochs=1", "model.dropout=0.2",
                 "tensorboard.images=false", "tensorboard.histograms=false"]
    final = train_and_evaluate(load_config(ROOT / "configs" / "demo.yaml", overrides), tmp_path / "run")
    # 10 classes: chance is 90% top-1 error; this run reaches about 57%.
    assert final["val_top1_error"] < 0.7, final  # at least 3x chance accuracy
