"""The typed config: defaults, YAML files, overrides, and errors that name the key."""

from pathlib import Path

import pytest
import yaml

from alexnet.config import Config, config_yaml, load_config, parse_overrides
from alexnet.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_shipped_configs_load_and_start_with_their_command():
    names = {p.name for p in CONFIGS}
    assert {"demo.yaml", "imagenet2012.yaml", "imagenette.yaml", "folder.yaml", "claims.yaml"} <= names
    commands = {"demo.yaml": "# make train\n", "claims.yaml": "# make claims\n"}
    for path in CONFIGS:
        load_config(path)
        assert path.read_text().startswith(commands.get(path.name, f"# make train CONFIG=configs/{path.name}"))


def test_imagenet_config_is_the_papers_recipe():
    config = load_config(Path(CONFIGS[0]).parent / "imagenet2012.yaml")
    t = config.train
    assert (t.global_batch_size, t.learning_rate, t.epochs, t.schedule) == (128, 0.01, 90, "paper")
    assert (t.momentum, t.weight_decay) == (0.9, 5e-4)
    assert (config.model.variant, config.model.init, config.model.input_scale) == ("paper", "paper", 1.0)


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
