"""Trained AlexNets from torchvision and Caffe, read from their files alone, against the frameworks' own outputs;
alexnet.AlexNet with keras.applications' arguments; files that are not what they should be, refused in one line.

The files are small networks (1/16 of the widths, 10 classes) written by the real tools and committed with the
probabilities each framework computed (tests/data/make_pretrained_fixtures.py): torch.save and PyTorch's own
forward pass for torchvision's; the protobuf runtime from caffe.proto's field numbers, in both of Caffe's layer
forms, and a NumPy forward pass written from Caffe's layer definitions, for BVLC's.
"""

import io
import pickle
import re
import subprocess
import sys
import zipfile
from urllib.error import URLError

import keras
import numpy as np
import pytest

import alexnet
from alexnet.config import load_config
from alexnet.errors import ConfigError, DataError
from alexnet.pretrained import read_weights
from helpers import ROOT, cli, side_by_side

DATA = ROOT / "tests" / "data"
FILES = {"torchvision_w16.pth": "torchvision_w16.npz", "caffe_w16.caffemodel": "caffe_w16.npz",
         "caffe_w16_v1.caffemodel": "caffe_w16.npz"}


@pytest.mark.parametrize("name", FILES)
def test_the_network_from_a_file_gives_its_frameworks_probabilities(name):
    expected = np.load(DATA / FILES[name])
    model = alexnet.AlexNet(weights=str(DATA / name), width=1 / 16, classes=10)
    size = 224 if name.endswith(".pth") else 227
    assert model.input.shape[1:] == (size, size, 3)
    probabilities = np.asarray(model(expected["images"], training=False))
    # The frameworks' own float32 outputs, to float32's rounding (measured: 3.6e-7 torchvision, 4.0e-7 Caffe).
    assert np.abs(probabilities - expected["probabilities"]).max() <= 1e-6
    np.testing.assert_array_equal(np.argsort(-probabilities)[:, :5], np.argsort(-expected["probabilities"])[:, :5])
    assert probabilities.max() > 0.4  # far from a uniform guess: a wrong layout would show


@pytest.mark.slow
def test_the_full_size_layouts_have_the_published_parameter_counts():
    assert alexnet.AlexNet(variant="owt", layout="torchvision").count_params() == 61_100_840
    assert alexnet.AlexNet(variant="paper_grouped", layout="caffe").count_params() == 60_965_224
    assert alexnet.AlexNet().count_params() == 62_378_344


def test_keras_applications_arguments():
    top = alexnet.AlexNet(width=1 / 16, classes=7)
    assert top.output.shape == (None, 7)
    images = np.random.default_rng(0).integers(0, 256, (2, 227, 227, 3), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(top(images)).sum(axis=1), 1.0, rtol=1e-5)
    logits = alexnet.AlexNet(width=1 / 16, classes=7, classifier_activation=None)
    assert not np.allclose(np.asarray(logits(images)).sum(axis=1), 1.0)
    assert alexnet.AlexNet(width=1 / 16, include_top=False).output.shape == (None, 6, 6, 16)  # pool5
    assert alexnet.AlexNet(width=1 / 16, include_top=False, pooling="max").output.shape == (None, 16)
    small = alexnet.AlexNet(width=1 / 16, include_top=False, pooling="avg", input_shape=(100, 100, 3))
    assert small.input.shape == (None, 100, 100, 3) and small.output.shape == (None, 16)
    features = alexnet.AlexNet(weights=str(DATA / "caffe_w16.caffemodel"), width=1 / 16, include_top=False)
    full = alexnet.AlexNet(weights=str(DATA / "caffe_w16.caffemodel"), width=1 / 16, classes=10)
    np.testing.assert_array_equal(*(m.get_layer("conv5").get_weights()[0] for m in (features, full)))
    with pytest.raises(ConfigError, match=r"input_shape=\(100, 100, 3\) with the top of torchvision's network"):
        alexnet.AlexNet(weights=str(DATA / "torchvision_w16.pth"), width=1 / 16, classes=10, input_shape=(100, 100, 3))
    with pytest.raises(ConfigError, match="classes=1000 with the top of caffe_w16.caffemodel, which classifies 10"):
        alexnet.AlexNet(weights=str(DATA / "caffe_w16.caffemodel"), width=1 / 16)
    with pytest.raises(ConfigError, match="model.variant=owt contradicts model.init_from=.*caffe_w16.caffemodel, "
                                          "whose network has model.variant=paper_grouped"):
        alexnet.AlexNet(variant="owt", weights=str(DATA / "caffe_w16.caffemodel"), width=1 / 16, classes=10)
    with pytest.raises(ConfigError, match="pooling='sum'"):
        alexnet.AlexNet(include_top=False, pooling="sum")


def zip_with(entries: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


class Shell:  # pickles as a call of os.system: what a state dict must never make this reader run
    def __reduce__(self):
        import os

        return os.system, ("echo pwned",)


@pytest.mark.parametrize("name, content, message", [
    ("notes.pth", b"not a zip", r"is not a state dict saved by torch.save in its zip format"),
    ("empty.pth", zip_with({"x/version": b"3"}), r"is a zip without torch.save's data.pkl"),
    ("shell.pth", zip_with({"x/data.pkl": pickle.dumps(Shell(), protocol=2)}), r"holds posix.system|holds os.system"),
    ("list.pth", zip_with({"x/data.pkl": pickle.dumps([1, 2], protocol=2)}), r"holds a list, not a state dict"),
    ("other.pth", zip_with({"x/data.pkl": pickle.dumps({"fc.weight": 1}, protocol=2)}),
     r"is not torchvision's alexnet state dict: expected the keys features.0.weight"),
    ("noise.caffemodel", bytes(range(7, 250, 3)) * 40,
     r"is not a Caffe model \(a protobuf NetParameter\) or is cut short"),
    ("empty.caffemodel", b"\x0a\x07AlexNet", r"has no layers with weights: expected BVLC's bvlc_alexnet.caffemodel"),
    ("weights.npz", b"", r"expected torchvision's alexnet .pth or BVLC's bvlc_alexnet.caffemodel"),
])
def test_a_file_that_is_not_a_trained_alexnet_is_refused_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as error:
        read_weights(path)
    assert "\n" not in str(error.value)


def test_a_pth_whose_storage_is_cut_short_is_named_as_damaged(tmp_path):
    """Storages shorter than their tensors (a file cut short) are refused in one line, before any is read."""
    with zipfile.ZipFile(DATA / "torchvision_w16.pth") as source, zipfile.ZipFile(tmp_path / "cut.pth", "w") as cut:
        for entry in source.namelist():
            content = source.read(entry)
            cut.writestr(entry, content[: len(content) // 2] if "/data/" in entry else content)
    with pytest.raises(DataError, match=r"cut.pth is damaged: buffer is smaller than requested size"):
        read_weights(tmp_path / "cut.pth")


def test_a_file_of_other_widths_is_refused_naming_the_layer_and_both_shapes():
    with pytest.raises(DataError, match=r"torchvision_w16.pth does not fit this network: its conv1 is "
                                        r"\[\(11, 11, 3, 4\), \(4,\)\], the network's \[\(11, 11, 3, 8\), \(8,\)\]"):
        alexnet.AlexNet(weights=str(DATA / "torchvision_w16.pth"), width=1 / 8, classes=10)


def test_imagenet_weights_are_fetched_on_request_and_offline_the_error_says_where_to_put_them(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match=r"could not download https://download.pytorch.org/models/"
                                        r"alexnet-owt-7be5be79.pth .*put alexnet-owt-7be5be79.pth into .*models/"):
        alexnet.AlexNet(weights="imagenet")
    fake = tmp_path / "alexnet-owt-7be5be79.pth"
    fake.write_bytes(b"a file of another checksum")
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: str(fake))
    with pytest.raises(DataError, match="does not match torchvision's published checksum"):
        alexnet.AlexNet(weights="imagenet")
    assert not fake.exists() and fake.with_suffix(".damaged").exists()  # moved aside: the next call downloads again


def test_a_weight_file_in_init_from_sets_the_layout_and_a_contradicting_key_is_named():
    config = load_config(ROOT / "configs" / "demo.yaml", [f"model.init_from={DATA / 'torchvision_w16.pth'}",
                                                          "model.input_scale=1", "model.init=paper"])
    assert (config.model.layout, config.model.variant, config.model.image_size) == ("torchvision", "owt", 224)
    with pytest.raises(ConfigError, match=r"model.image_size=67 contradicts model.init_from=.*caffe_w16.caffemodel, "
                                          r"whose network has model.image_size=227"):
        load_config(None, [f"model.init_from={DATA / 'caffe_w16.caffemodel'}", "model.image_size=67"])
    with pytest.raises(ConfigError, match="model.input_scale does not apply to model.layout=caffe"):
        load_config(None, [f"model.init_from={DATA / 'caffe_w16.caffemodel'}", "model.input_scale=0.5"])


@pytest.mark.slow
def test_import_alexnet_registers_what_a_runs_best_model_names(tiny_run):
    code = ("import sys, keras, alexnet; m = keras.models.load_model(sys.argv[1]); "
            "print(type(m.get_layer('colour_noise')).__name__, m.optimizer.__class__.__name__)")
    result = subprocess.run([sys.executable, "-c", code, str(tiny_run / "best.keras")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["PCAColourNoise", "PaperSGD"]
    script = ROOT / ".venv" / "bin" / "alexnet"
    if script.exists():  # the installed command is python -m alexnet
        help_text = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=300).stdout
        assert help_text == subprocess.run([sys.executable, "-m", "alexnet", "--help"], capture_output=True, text=True,
                                           timeout=300, cwd=ROOT).stdout


@pytest.mark.slow
def test_fine_tuning_from_torchvisions_file_through_the_commands(small_data, tmp_path):
    pth = DATA / "torchvision_w16.pth"
    args = [f"data.dir={small_data}", "data.source=demo", "model.width=0.0625", f"model.init_from={pth}",
            "model.input_scale=1", "train.epochs=1", "train.global_batch_size=8", "train.steps_per_epoch=2",
            "tensorboard.histograms=false", "tensorboard.layer_stats_steps=0"]
    code, out, err = cli(["train", "--config", "configs/folder.yaml", "--logs", str(tmp_path), "--run", "tuned", *args])
    assert code == 0, err[-3000:]
    assert f"weights from {pth}; initialised afresh: none" in out  # 10 classes, as the file's fc8
    resolved = load_config(tmp_path / "tuned" / "config.yaml", check_files=False).model
    assert (resolved.layout, resolved.variant, resolved.image_size) == ("torchvision", "owt", 224)
    image = next((small_data / "val").rglob("*.jpg"))
    (code, out, err), (predict_code, predicted, predict_err), (bad_code, _, bad_err) = side_by_side(
        ["eval", "--logs", str(tmp_path), "--run", "tuned"],
        ["predict", "--logs", str(tmp_path), "--run", "tuned", str(image)],
        ["train", "--config", "configs/folder.yaml", "--logs", str(tmp_path), "--run", "bad", *args,
         "model.variant=paper_grouped"])
    assert code == 0 and "this run, 10 crops" in out, err[-3000:]
    assert predict_code == 0 and image.name in predicted, predict_err[-3000:]
    assert bad_code == 2 and re.search(r"error: model.variant=paper_grouped contradicts model.init_from=", bad_err)


@pytest.mark.slow
def test_an_imported_network_is_a_finished_run_that_eval_predict_and_report_read(small_data, tmp_path):
    """`make import` of Caffe's network (evaluated here on the demo set, whose 10 classes the small file has)."""
    common = ["--logs", str(tmp_path), "--run", "caffe"]
    code, out, err = cli(["import", "--weights", str(DATA / "caffe_w16.caffemodel"), *common, "--config",
                          "configs/demo.yaml", "model.width=0.0625", "model.input_scale=1", f"data.dir={small_data}"])
    assert code == 0, err[-3000:]
    assert "caffe's network, 227,314 parameters" in out
    image = next((small_data / "val").rglob("*.jpg"))
    (code, out, err), (predict_code, predicted, predict_err), (train_code, _, _) = side_by_side(
        ["eval", *common], ["predict", *common, str(image)], ["train", "--config", "configs/demo.yaml", *common])
    assert code == 0 and "LRN's gain (output / input) varies across positions by lrn1" in out, err[-3000:]
    assert predict_code == 0 and predicted.startswith(str(image)), predict_err[-3000:]
    assert train_code == 4  # finished: training never writes over it
    code, out, err = cli(["report", *common])  # after eval: the page shows its Table 2
    page = (tmp_path / "caffe" / "report.html").read_text()
    assert code == 0 and "An imported network" in page and 'id="figure3"' in page and "Table 2" in page, err
