"""The run's hyperparameters for TensorBoard's HParams tab: the keys that tell runs apart, with declared domains, and
the final metrics beside them."""

from __future__ import annotations

from tensorboard.plugins.hparams import api as hp

from alexnet import tags
from alexnet.config import DataConfig, ModelConfig, TrainConfig, choices


def hparam_value(value):
    """A config value as the HParams tab takes it: booleans as "true" / "false" (model.lrn mixes them with a
    string)."""
    return str(value).lower() if isinstance(value, bool) else value


def discrete(cls, key: str) -> hp.HParam:
    """The HParam of a Literal-typed config key, its domain the values the config accepts."""
    section = cls.__name__.removesuffix("Config").lower()
    return hp.HParam(f"{section}.{key}", hp.Discrete([hparam_value(v) for v in choices(cls, key)]))


# The keys that tell runs apart in TensorBoard's HParams tab, each with its domain (a declared domain gives the
# tab a typed axis: a key whose values mix None, numbers and strings breaks its numeric axes,
# tensorflow/tensorboard#4770, #2942), and the final metrics beside them. The whole config is the Text tab's.
HPARAMS = (
    discrete(ModelConfig, "arch"),
    discrete(ModelConfig, "variant"),
    hp.HParam("model.dropout", hp.RealInterval(0.0, 1.0)),
    discrete(ModelConfig, "lrn"),
    discrete(DataConfig, "augment"),
    hp.HParam("train.learning_rate", hp.RealInterval(0.0, 10.0)),
    hp.HParam("train.global_batch_size", hp.IntInterval(1, 1 << 20)),
    hp.HParam("train.epochs", hp.IntInterval(1, 1 << 20)),
    discrete(TrainConfig, "schedule"),
    discrete(TrainConfig, "precision"),
)
HPARAM_METRICS = (hp.Metric(tags.final(tags.TOP1_ERROR), display_name="final val top-1 error"),
                  hp.Metric(tags.final(tags.TOP5_ERROR), display_name="final val top-5 error"))


def run_hparams(config) -> dict:
    """{HParam: the run's value} of HPARAMS, each as its domain takes it."""
    values = {}
    for param in HPARAMS:
        section, key = param.name.split(".")
        values[param] = hparam_value(getattr(getattr(config, section), key))
    return values


def write_hparams(config, trial_id: str) -> None:
    """The HParams tab's experiment (HPARAMS, HPARAM_METRICS) and this run's values, to the default writer."""
    hp.hparams_config(hparams=list(HPARAMS), metrics=list(HPARAM_METRICS))
    hp.hparams(run_hparams(config), trial_id=trial_id)
