"""The typed config: defaults, YAML files, overrides, and errors that name the key."""

from pathlib import Path

import pytest
import yaml

from alexnet.config import Config, config_yaml, load_config, parse_overrides
from alexnet.errors import ConfigError, DataError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_shipped_configs_load_and_start_with_their_command():
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "imagenet2012.yaml", "imagenette.yaml", "folder.yaml", "claims.yaml"} <= names
    commands = {"demo.yaml": "# make train\n", "claims.yaml": "# make claims\n", "compare.yaml": "# make compare\n"}
    for path in CONFIGS:
        load_config(path, check_files=False)  # folder.yaml may name a run that is not trained here
        assert path.read_text().startswith(commands.get(path.name, f"# make train CONFIG=configs/{path.name}"))


def test_imagenet_config_is_the_papers_recipe():
    config = load_config(Path(CONFIGS[0]).parent / "imagenet2012.yaml")
    t = config.train
    assert (t.global_batch_size, t.learning_rate, t.epochs, t.schedule) == (128, 0.01, 90, "paper")
    assert (t.momentum, t.weight_decay) == (0.9, 5e-4)
    assert (config.model.variant, config.model.init, config.model.input_scale) == ("paper", "paper", 1.0)


def test_imagenet_config_expects_the_papers_errors_for_the_protocol_that_gave_them():
    from alexnet.studies.evaluate import PUBLISHED

    header = " ".join(line.lstrip("# ") for line in (Path(CONFIGS[0]).parent / "imagenet2012.yaml").read_text()
                      .splitlines() if line.startswith("#"))
    top1, top5 = PUBLISHED["paper, 1 CNN (Table 2, 10 crops)"]
    expected = f"about {top1:.1%} top-1 / {top5:.1%} top-5 error on the validation set with the paper's 10 crops"
    assert expected in header, header  # section 6 averages ten patches; one centre crop does worse
    assert "about 1.5 points more with one centre crop" in header


def test_the_docs_state_the_mean_colour_as_a_deviation_and_the_best_epoch_as_chosen_on_validation():
    root = Path(CONFIGS[0]).parents[1]
    deviation = "**Mean subtraction, a deliberate deviation**: the paper subtracts the training set's mean *image*"
    assert deviation in (root / "docs" / "model.md").read_text()
    assert "chosen on the validation split it is reported on" in (root / "README.md").read_text()


def test_overrides_are_typed_and_nested():
    nested = {"train": {"epochs": 2}, "model": {"variant": "owt"}}
    assert parse_overrides(["train.epochs=2", "model.variant=owt"]) == nested
    config = load_config(None, ["train.epochs=2", "train.learning_rate=1e-3", "train.devices=[a, b]"])
    assert (config.train.epochs, config.train.learning_rate, config.train.devices) == (2, 1e-3, ["a", "b"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=2", "unknown key 'train.epoch'; accepted keys here: epochs,"),
        ("trian.epochs=2", "unknown key 'trian'; accepted keys here: model, data, train, tensorboard"),
        ("train.epochs=two", "train.epochs: expected an integer, got 'two'"),
        ("train.epochs=0", "train.epochs: 0 is out of range (must be >= 1)"),
        ("train.learning_rate=0", "train.learning_rate: 0.0 is out of range (must be > 0.0)"),
        ("model.dropout=1.5", "model.dropout: 1.5 is out of range (must be >= 0.0 and <= 1.0)"),
        ("model.variant=vgg", "model.variant: 'vgg' is not one of 'paper', 'paper_grouped', 'owt'"),
        ("train.jit_compile=1", "train.jit_compile: expected true or false, got 1"),
        ("train", "override 'train' is not of the form section.key=value"),
        ("tensorboard.profile_steps=10-5", "tensorboard.profile_steps: '10-5' is not a range of steps: write "
                                           "first-last, e.g. 5-10"),
        ("tensorboard.profile_steps=[5, 6, 7]", "tensorboard.profile_steps: [5, 6, 7] is not a range of steps"),
        ("tensorboard.profile_steps=true", "tensorboard.profile_steps: True is not a range of steps"),
        ("model.image_size=300", "model.image_size (300) must not exceed data.resize_size (256)"),
        ("data.source=tfds", "data.source=tfds needs data.name"),
        ("model.remove_conv=conv5", "model.remove_conv: 'conv5' is not one of None, 'conv3', 'conv4'"),
        ("data.dir=", "data.dir: expected a string, got None"),
    ],
)
def test_bad_values_fail_with_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert message in str(error.value)


def test_yaml_file_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 3\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'train.lerning_rate'"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["train.epochs=7", "model.variant=owt"])
    (tmp_path / "config.yaml").write_text(config_yaml(config))
    again = load_config(tmp_path / "config.yaml")
    assert again == config and isinstance(again, Config)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["epochs"] == 7


@pytest.mark.parametrize("value, steps", [("5-10", [5, 10]), ("5,10", [5, 10]), ("'5'", [5, 5]), ("5", [5, 5]),
                                          ("[5, 10]", [5, 10]), ("null", None), ("", None)])
def test_profile_steps_is_a_typed_range(value, steps):
    config = load_config(None, [f"tensorboard.profile_steps={value}"])
    assert config.tensorboard.profile_steps == steps
    assert load_config(None, [f"tensorboard.profile_steps={value}"]) == config


def test_optional_values_are_none_and_an_empty_override_clears_them(tmp_path):
    config = load_config(None)
    assert (config.model.init_from, config.model.colour_stats, config.model.remove_conv, config.data.name,
            config.data.prepared_dir, config.data.service, config.tensorboard.profile_steps) == (None,) * 7
    source = tmp_path / "best.keras"
    source.write_bytes(b"")
    assert load_config(None, [f"model.init_from={source}"]).model.init_from == str(source)
    assert load_config(None, [f"model.init_from={source}", "model.init_from="]).model.init_from is None
    (tmp_path / "config.yaml").write_text(config_yaml(config))
    assert "init_from: null" in (tmp_path / "config.yaml").read_text()
    assert load_config(tmp_path / "config.yaml") == config


def test_files_the_run_will_read_are_checked_before_any_work(tmp_path):
    with pytest.raises(DataError, match=f"model.init_from: {tmp_path}/a.keras does not exist; train that run first"):
        load_config(None, [f"model.init_from={tmp_path}/a.keras"])
    with pytest.raises(DataError, match=f"model.colour_stats: {tmp_path}/c.json does not exist; write it with "
                                        "`make prepare"):
        load_config(None, [f"model.colour_stats={tmp_path}/c.json"])
    # A finished run's own config (eval, export, predict) is read without them: they are not needed again.
    assert load_config(None, [f"model.init_from={tmp_path}/a.keras"], check_files=False).model.init_from
