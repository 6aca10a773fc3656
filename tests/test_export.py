"""The SavedModel: same predictions as the Keras model, loaded without this project's code; classify on any
image format; fewer than five classes; export, predict and eval through the command line."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet import rundir
from alexnet.data.preprocess import eval_preprocess
from alexnet.export import export_savedmodel
from alexnet.model import build_alexnet
from alexnet.records import BestEpoch
from helpers import GOOD_FILES, cli, encode, noise_jpeg, side_by_side, solid


@pytest.mark.slow
def test_savedmodel_predicts_like_the_keras_model_without_this_projects_code(tiny_run, small_data, tmp_path):
    model = keras.saving.load_model(tiny_run / rundir.BEST_MODEL, safe_mode=True)
    jpegs = sorted((small_data / "val").rglob("*.jpg"))[:4]
    images = np.stack([eval_preprocess(tf.constant(p.read_bytes()), 74, 67).numpy() for p in jpegs])
    expected = np.asarray(model(images, training=False))
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({str(tiny_run / rundir.EXPORT)!r})
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
    # The package is installed, so the script could import it: it asserts that nothing of it was imported.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["serve"], expected, atol=1e-5)
    top5 = np.argsort(-expected, axis=1)[:, :5]
    np.testing.assert_array_equal(out["classes"], top5)
    np.testing.assert_allclose(out["probabilities"], np.take_along_axis(expected, top5, axis=1), atol=1e-5)
    names = json.loads((tiny_run / rundir.CLASSES).read_text())
    assert out["names"] == [[names[i] for i in row] for row in top5]
    assert len(out["errors"]) == 2
    assert "expected to be a uint8 tensor but is a float tensor" in out["errors"][0]
    assert "67" in out["errors"][1] and "60" in out["errors"][1]


@pytest.fixture(scope="module")
def three_class_export(tmp_path_factory):
    """An untrained tiny model of 3 classes, exported: fewer classes than the top 5."""
    model = build_alexnet("paper", num_classes=3, image_size=67, width=1 / 16, init="he_normal",
                          input_scale=1 / 64, seed=5)
    export_dir = export_savedmodel(model, ["ant", "bee", "cat"], tmp_path_factory.mktemp("export") / "export", 74)
    return model, tf.saved_model.load(str(export_dir)).signatures["classify"]


# Every format classify must take, as awkward as collections have them.
FORMATS = {
    "cmyk_jpeg": GOOD_FILES["cmyk.jpg"][0],
    "png_rgba": GOOD_FILES["rgba.PNG"][0],
    "gif": GOOD_FILES["anim.gif"][0],
    "bmp": GOOD_FILES["pic.BMP"][0],
    "noise_jpeg": lambda: noise_jpeg(3, (90, 120)),
    "noise_png": lambda: encode(solid("RGB", (9, 99, 199), (100, 80)), "PNG"),
}


def test_classify_takes_every_format_alone_and_in_one_mixed_batch(three_class_export):
    model, classify = three_class_export
    blobs = [make() for make in FORMATS.values()]
    expected = np.asarray(model(np.stack([eval_preprocess(b, 74, 67).numpy() for b in blobs]), training=False))
    mixed = classify(image_bytes=tf.constant(blobs))
    assert mixed["classes"].shape == (len(blobs), 3)  # top-3 of 3 classes, not top-5
    for i, blob in enumerate(blobs):
        alone = classify(image_bytes=tf.constant([blob]))
        order = np.argsort(-expected[i])
        np.testing.assert_array_equal(alone["classes"][0], order, err_msg=list(FORMATS)[i])
        np.testing.assert_allclose(alone["probabilities"][0], expected[i][order], atol=1e-5)
        np.testing.assert_allclose(mixed["probabilities"][i], alone["probabilities"][0], atol=1e-6)
        assert [n.decode() for n in alone["class_names"][0].numpy()] == [["ant", "bee", "cat"][j] for j in order]


@pytest.mark.slow
def test_export_predict_and_eval_through_the_command_line(tiny_run, small_data, tmp_path):
    logs = ["--logs", str(tiny_run.parent), "--run", tiny_run.name]
    (tiny_run / rundir.EXPORT / "saved_model.pb").unlink()
    # A fresh process must register the custom layers to load best.keras; eval reads it beside the export.
    (code, out, err), evaluated = side_by_side(["export", *logs], ["eval", *logs])
    assert code == 0, out + err
    assert (tiny_run / rundir.EXPORT / "saved_model.pb").exists()

    image = tmp_path / "ring.png"
    image.write_bytes(encode(solid("RGB", (200, 30, 30), (120, 90)), "PNG"))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    code, out, err = cli(["predict", *logs, str(image), str(bad)])
    assert code == 0, out + err
    names = json.loads((tiny_run / rundir.CLASSES).read_text())
    line = next(row for row in out.splitlines() if row.startswith(str(image)))
    assert len(line.split(", ")) == 5 and all(any(n in part for n in names) for part in line.split(", "))
    assert f"{bad}: not a readable JPEG, PNG, BMP or GIF image; skipped" in out

    code, out, err = evaluated
    assert code == 0, out + err
    best = BestEpoch.read(tiny_run / rundir.BEST_RECORD)
    row = next(line for line in out.splitlines() if "this run, centre crop" in line)
    assert f"{best.val_top1_error:.1%}" in row  # the same model on the same data as in training
