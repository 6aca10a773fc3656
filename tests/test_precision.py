"""train.precision=auto: bfloat16 where the hardware computes it natively, with the hardware facts injected."""

import pytest
import tensorflow as tf

from alexnet.training import precision
from alexnet.training.driver import build_model
from helpers import tiny_config


@pytest.mark.parametrize("flags, gpus, chosen, why", [
    ({"avx512f", "amx_bf16", "amx_tile"}, [], "mixed_bfloat16", "auto: this CPU has amx_bf16"),
    ({"avx512f", "avx512_bf16"}, [], "mixed_bfloat16", "auto: this CPU has avx512_bf16"),
    ({"avx2", "avx512f"}, [], "float32", "auto: this CPU has neither amx_bf16 nor avx512_bf16"),
    (set(), [(9, 0)], "mixed_bfloat16", "auto: GPU compute capability 9.0 has bfloat16 units"),
    ({"amx_bf16"}, [(7, 5)], "float32", "auto: GPU compute capability 7.5 has no bfloat16 units"),
])
def test_auto_picks_bfloat16_only_where_the_hardware_computes_it(flags, gpus, chosen, why):
    assert precision.choose_precision("auto", flags, gpus) == (chosen, why)
    assert precision.choose_precision("float32", flags, gpus) == ("float32", "train.precision")


@pytest.mark.parametrize("flags, dtype", [({"amx_bf16"}, "bfloat16"), ({"avx2"}, "float32")])
def test_the_model_is_built_in_what_auto_picks_and_the_log_says_why(small_data, monkeypatch, capsys, flags, dtype):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    model = build_model(tiny_config(small_data, "train.precision=auto"), 10, tf.distribute.get_strategy())
    assert model.get_layer("conv1").compute_dtype == dtype
    assert model.get_layer("probabilities").compute_dtype == "float32"
    policy = "mixed_bfloat16" if dtype == "bfloat16" else "float32"
    assert f"precision {policy} (auto: this CPU has " in capsys.readouterr().out


def test_this_machines_facts_are_read():
    flags = precision.cpu_flags()
    assert flags and all(isinstance(flag, str) for flag in flags)  # Linux: /proc/cpuinfo names them
    assert precision.resolve_precision("auto")[0] in ("mixed_bfloat16", "float32")
