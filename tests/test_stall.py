"""A stalled start is named while it happens: the silent layer found from the probe, the warning in the log
and in TensorBoard, and no warning for a run whose loss is not that of a uniform guess."""

import math
import re

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from alexnet import rundir, tags
from alexnet.model import build_alexnet
from alexnet.training.driver import train_and_evaluate
from alexnet.training.layer_stats import LayerProbe
from alexnet.training.stall import silent_layer, stall_message
from helpers import tiny_config


def probe_batch(classes=4):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, 67, 67, 3), dtype=np.uint8), rng.integers(0, classes, 8)


def test_the_lowest_silenced_layer_is_named():
    model = build_alexnet("paper", num_classes=4, image_size=67, width=1 / 16, init="he_normal", input_scale=1 / 64,
                          seed=0)
    model.compile(loss="sparse_categorical_crossentropy")
    probe = LayerProbe(model)
    start = probe(*probe_batch())
    assert silent_layer(start, start) is None  # nothing changed
    conv5 = model.get_layer("conv5")
    conv5.set_weights([np.zeros_like(w) for w in conv5.get_weights()])  # conv5 and everything above go quiet
    name, what = silent_layer(start, probe(*probe_batch()))
    assert name == "conv5" and what.endswith("100% of its units dead"), what
    fc7 = tags.layer("fc7", tags.ACTIVATION_RMS)
    quieter = {k: v / 3 if k == fc7 else v for k, v in start.items()}  # 3x: named, not "silent"
    assert silent_layer(start, quieter) == ("fc7", f"activation RMS {start[fc7]:.3g} -> {quieter[fc7]:.3g}")


def test_the_message_names_the_loss_the_uniform_guess_the_layer_and_what_to_change():
    message = stall_message(3, 2.301, 10, ("conv5", "activation RMS 0.56 -> 0.02, 93% of its units dead"))
    assert message.startswith(f"warning: stalled start: after 3 epoch(s) the training loss 2.301 is still that of a "
                              f"uniform guess (ln(10) = {math.log(10):.3f}); conv5 went silent first (activation RMS "
                              f"0.56 -> 0.02, 93% of its units dead). To fix it, ")
    assert "model.zero_fc8=true" in message


def stall_texts(run_dir) -> list[str]:
    """The warnings/stall text entries TensorBoard shows for the run (its Text dashboard reads these)."""
    accumulator = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    if tags.STALL not in accumulator.Tags()["tensors"]:
        return []
    assert accumulator.SummaryMetadata(tags.STALL).plugin_data.plugin_name == "text"
    return [e.tensor_proto.string_val[0].decode() for e in accumulator.Tensors(tags.STALL)]


@pytest.mark.slow
def test_a_stalled_run_is_told_while_it_trains_and_a_run_away_from_the_uniform_loss_is_not(small_data, tmp_path,
                                                                                              capsys):
    common = ["train.epochs=2", "train.steps_per_epoch=4", "train.stall_epochs=2", "train.warmup_epochs=0",
              "tensorboard.layer_stats_steps=0", "tensorboard.histograms=false", "tensorboard.images=false"]
    # Uniform first predictions and a rate too small to move them: the loss stays at ln(10).
    train_and_evaluate(tiny_config(small_data, *common, "model.zero_fc8=true", "train.learning_rate=1e-9"),
                       tmp_path / "stalled")
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: stalled start")]
    assert len(warnings) == 1, out
    assert warnings[0].startswith("warning: stalled start: after 2 epoch(s) the training loss 2.30")
    assert out.index("epoch 2/2") < out.index(warnings[0]) < out.index("final validation")  # said when it happened
    assert stall_texts(tmp_path / "stalled") == [warnings[0]]

    # Random first predictions, the same frozen rate: the loss stays far above ln(10), no stall. (Without LRN,
    # whose normalising would shrink the tiny network's logits towards a uniform guess.)
    train_and_evaluate(tiny_config(small_data, *common, "model.zero_fc8=false", "train.learning_rate=1e-9",
                                   "model.lrn=false"), tmp_path / "confident")
    out = capsys.readouterr().out
    loss = float(re.search(r"epoch 2/2: loss ([\d.]+)", out).group(1))
    assert "stalled start" not in out and loss > 1.05 * math.log(10), out
    assert stall_texts(tmp_path / "confident") == []
    assert (tmp_path / "confident" / rundir.FINAL_METRICS).exists()
