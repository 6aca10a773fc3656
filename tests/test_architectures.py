"""The networks AlexNet is compared with: their layouts and counts, the switches they take, and the same
path through training, evaluation and export as AlexNet."""


import numpy as np
import pytest

from alexnet import rundir, tags
from alexnet.architectures import build_from_config, build_lenet5, build_resnet18, build_resnet50, multiply_adds
from alexnet.config import load_config
from alexnet.errors import ConfigError
from alexnet.export import predict_files
from alexnet.records import CompareStudy
from alexnet.rundir import RunDir
from alexnet.studies.evaluate import evaluate_run
from alexnet.training.driver import train_and_evaluate
from alexnet.training.layer_stats import weighted_layers
from helpers import tiny_config


def trainable(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.slow
def test_the_parameter_counts_at_1000_classes():
    assert trainable(build_resnet18(1000)) == 11_689_512  # torchvision's resnet18 (it counts no BN statistics)
    assert build_resnet50(1000).count_params() == 25_636_712  # keras.applications' (BN statistics included)
    # LeNet-5 on RGB: C1 456, C3 2,416, C5 48,120, F6 10,164, output 85 per class.
    assert build_lenet5(1000).count_params() == 146_156 and build_lenet5(10).count_params() == 62_006


def test_lenet5_layout_and_its_multiply_adds_counted_by_hand():
    model = build_lenet5(10)
    shapes = {name: model.get_layer(name).output.shape[1:] for name in ("c1", "s2", "c3", "s4", "c5", "f6")}
    assert shapes == {"c1": (28, 28, 6), "s2": (14, 14, 6), "c3": (10, 10, 16), "s4": (5, 5, 16), "c5": (1, 1, 120),
                      "f6": (84,)}
    # C1 28*28*6*25*3 + C3 10*10*16*25*6 + C5 120*25*16 + F6 120*84 + output 84*10
    assert multiply_adds(model) == 352_800 + 240_000 + 48_000 + 10_080 + 840


def test_plain18_is_resnet18_without_any_shortcut():
    resnet, plain = build_resnet18(10, image_size=64), build_resnet18(10, image_size=64, shortcuts=False)
    adds = [layer for layer in resnet.layers if layer.__class__.__name__ == "Add"]
    assert len(adds) == 8 and not [layer for layer in plain.layers if layer.__class__.__name__ == "Add"]
    assert len(weighted_layers(resnet)) == 21 and len(weighted_layers(plain)) == 18  # 17 convolutions + fc
    # The three projections are all that plain-18 lacks: (64*128 + 128*256 + 256*512) weights and their BN.
    assert trainable(resnet) - trainable(plain) == 64 * 128 + 128 * 256 + 256 * 512 + 2 * (128 + 256 + 512)
    assert resnet(np.zeros((2, 64, 64, 3), np.uint8)).shape == (2, 10)


@pytest.mark.parametrize("override, message", [
    ("model.lrn=false", "model.lrn does not apply to model.arch=resnet18: that network takes model.num_classes"),
    ("model.dropout=0.3", "model.dropout does not apply to model.arch=resnet18"),
    ("model.zero_fc8=true", "model.zero_fc8 does not apply to model.arch=resnet18; "),
])
def test_an_alexnet_switch_given_to_another_network_is_refused_naming_both(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, ["model.arch=resnet18", override])
    assert str(error.value).startswith(message.rstrip("; ")), str(error.value)
    assert "or model.arch=alexnet" in str(error.value)


def test_lenet5_takes_32x32_images_and_its_activation():
    with pytest.raises(ConfigError, match="model.arch=lenet5 takes 32x32 images"):
        load_config(None, ["model.arch=lenet5"])
    config = load_config(None, ["model.arch=lenet5", "model.image_size=32", "data.resize_size=36",
                                "model.activation=tanh"])
    model = build_from_config(config.model, num_classes=4)
    assert model.name == "lenet5" and model.get_layer("c3").activation.__name__ == "tanh"
    with pytest.raises(ConfigError, match="train.freeze names AlexNet's layers"):
        load_config(None, ["model.arch=lenet5", "model.image_size=32", "train.freeze=[c1]", "train.freeze_epochs=1"])


COMPARED = {"resnet18": ["model.arch=resnet18"],
            "lenet5": ["model.arch=lenet5", "model.image_size=32", "data.resize_size=36"]}


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(COMPARED))
def test_another_network_trains_evaluates_and_serves_like_alexnet(arch, small_data, tmp_path):
    # The tiny config's AlexNet switches back to their defaults: they do not apply to these networks.
    config = tiny_config(small_data, "model.width=1", "model.init=paper", "model.zero_fc8=false",
                         "model.image_size=35", "data.resize_size=40", "tensorboard.layer_stats_steps=1",
                         *COMPARED[arch])
    run = tmp_path / arch
    final = train_and_evaluate(config, run)
    assert 0 <= final.best.val_top5_error <= final.best.val_top1_error <= 1
    probed = {tag for tag in _train_tags(run) if tags.layer_statistic(tag)}
    assert {tags.layer(layer.name, tags.GRADIENT_NORM)
            for layer in weighted_layers(build_from_config(config.model, 10))} <= probed  # every weighted layer
    result = evaluate_run(run, ["eval.train_sample=20", "eval.projector_images=10"])
    assert result.centre.images == 30
    image = next((small_data / "val").glob("*/*.jpg"))
    (prediction,) = predict_files(run, [str(image)])
    assert len(prediction["top5"]) == 5 and sum(p for _, p in prediction["top5"]) <= 1.0 + 1e-5
    assert RunDir(run).final_metrics().best.epoch == 1


def _train_tags(run) -> set:
    from helpers import scalars

    return set(scalars(run / rundir.TRAIN_EVENTS))


@pytest.mark.slow
def test_a_tiny_comparison_trains_each_network_in_its_own_process_and_reports(small_data, tmp_path, monkeypatch):
    from alexnet.studies import compare

    monkeypatch.setattr(compare, "COMPARED", {"resnet18": ("model.arch=resnet18",), "plain18": ("model.arch=plain18",)})
    overrides = [f"data.dir={small_data}", "model.image_size=35", "data.resize_size=40", "train.epochs=2",
                 "train.global_batch_size=8", "train.steps_per_epoch=1", "tensorboard.layer_stats_steps=1",
                 "compare.seeds=1", "compare.target_accuracy=0.05"]
    record = compare.run_study("configs/compare.yaml", overrides, tmp_path)
    study = tmp_path / "compare"
    assert CompareStudy.read(study / compare.RECORD) == record
    resnet, plain = (record.architectures[a] for a in ("resnet18", "plain18"))
    assert resnet.parameters - plain.parameters == 64 * 128 + 128 * 256 + 256 * 512 + 4 * (128 + 256 + 512)
    assert resnet.multiply_adds > plain.multiply_adds > 0 and resnet.inference_images_per_second > 0
    assert resnet.runs[0].peak_memory_gb > 0.1 and resnet.runs[0].seconds_to_target is not None
    norms = record.gradient_norms
    assert len(norms["resnet18"]["start"]) == 21 and len(norms["plain18"]["after epoch 1"]) == 18
    report = (study / compare.REPORT).read_text()
    assert "| resnet18 | 35x35 | " in report and f"]({compare.GRADIENTS})" in report
    assert (study / compare.GRADIENTS).read_bytes()[:4] == b"\x89PNG"
    # Resumed: nothing is trained again.
    monkeypatch.setattr("alexnet.studies.runner.train_in_own_process", lambda command: pytest.fail("trained again"))
    compare.run_study("configs/compare.yaml", overrides, tmp_path)
