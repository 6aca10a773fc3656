"""`make claims`: verdicts from hand-made numbers, a tiny study end to end, and resuming arm by arm."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from alexnet import tags
from alexnet.config import load_config
from alexnet.errors import ConfigError, DataError
from alexnet.records import ArmRun, ClaimsStudy
from alexnet.rundir import RunDir
from alexnet.studies import claims, events
from helpers import ROOT, TINY

RUN = ArmRun(val_top1_error=0.2, best_val_top1_error=0.2, train_top1_error=0.1,
                    train_top1_error_in_training=0.15, gap=0.1, steps=100, threshold_reached=True,
                    train_error_by_epoch=[0.15], val_error_by_epoch=[0.2])


def runs(**values) -> list:
    """ArmRuns with the one field named set to each of its values in turn."""
    (name, seq), = values.items()
    return [dataclasses.replace(RUN, **{name: value}) for value in seq]


def test_compare_pairs_the_seeds_and_signs_the_effect_the_way_the_paper_predicts():
    lrn = next(c for c in claims.CLAIMS if c.arm == "no_lrn")
    base = runs(val_top1_error=(0.20, 0.22, 0.21, 0.25, 0.19, 0.20))
    worse = runs(val_top1_error=[e + d for e, d in zip((0.20, 0.22, 0.21, 0.25, 0.19, 0.20),
                                                       (0.05, 0.01, 0.02, 0.03, 0.04, 0.06), strict=True)])
    result = claims.compare(lrn, base, worse)
    assert result.comparison.mean_difference == pytest.approx(0.035)
    assert result.comparison.p_value == pytest.approx(2 / 64)
    assert result.comparison.verdict == "holds" and result.baseline == [r.val_top1_error for r in base]
    assert claims.compare(lrn, worse, base).comparison.verdict == "reversed"
    converge = next(c for c in claims.CLAIMS if c.arm == "no_dropout" and c.metric is claims.Metric.STEPS)
    slower = runs(steps=(100, 130, 120, 110, 150, 140))
    faster = runs(steps=(40, 50, 60, 45, 70, 55))
    assert claims.compare(converge, slower, faster).comparison.verdict == "holds"  # without dropout: fewer steps
    assert claims.compare(converge, slower[:3], faster[:3]).comparison.verdict == "not shown at this scale"


def test_unknown_arms_are_refused():
    with pytest.raises(ConfigError, match=r"unknown arms \['relu6'\]"):
        claims.arms(["relu6"])


@pytest.mark.slow
def test_a_tiny_study_runs_writes_its_report_and_resumes_arm_by_arm(small_data, tmp_path, monkeypatch):
    overrides = [*TINY, f"data.dir={small_data}", "data.demo_images_per_class=12", "train.epochs=2",
                 "train.global_batch_size=8", "train.steps_per_epoch=3", "tensorboard.images=false",
                 "tensorboard.histograms=false", "tensorboard.layer_stats_steps=0",
                 "claims.arms=[baseline, no_dropout]", "claims.seeds=2", "claims.train_error_threshold=0.95",
                 "claims.figure1_epochs=1", "data.cache=true"]
    monkeypatch.setattr("alexnet.studies.figure1.RATES", (0.01, 0.1))  # a sweep of two rates
    config = str(ROOT / "configs" / "demo.yaml")
    record = claims.run_study(config, overrides, tmp_path)
    study = tmp_path / "claims"
    assert sorted(p.name for p in study.iterdir() if p.is_dir()) == [
        "baseline-seed0", "baseline-seed1", "no_dropout-seed0", "no_dropout-seed1", "report"]
    assert ClaimsStudy.read(study / claims.RECORD) == record
    gap, speed = record.claims
    assert (gap.metric, speed.metric) == ("gap", "steps") and len(speed.baseline) == 2
    assert speed.baseline_reached is not None and gap.baseline_reached is None
    # The gap is read in inference mode on every training image (the study sets eval.train_error_images).
    fitted = RunDir(study / "baseline-seed0").final_metrics().fitted
    assert fitted.train_images == 120
    assert gap.baseline[0] == pytest.approx(fitted.final_val_top1_error - fitted.train_top1_error)
    # Two seeds: the sign-flip test's smallest p is 2 / 4, so the numbers imply "not shown" whatever they are.
    assert speed.comparison.p_value >= 0.5 and speed.comparison.verdict == "not shown at this scale", speed
    assert speed.comparison.differences == pytest.approx([a - b for a, b in zip(speed.arm_values, speed.baseline,
                                                                                 strict=True)])
    figure1 = record.figure1
    assert set(figure1.chosen_rates.values()) <= {0.01, 0.1}
    assert len(figure1.thresholds["0.95"].steps["relu"]) == 2
    assert record.figure1_claim.claim == "ReLU trains much faster than tanh"
    report = (study / claims.REPORT).read_text()
    assert "ReLU trains much faster than tanh (3.1, Figure 1)" in report
    assert f"**{speed.comparison.verdict}**" in report
    assert "## Figure 1 as the paper ran it" in report
    for name in (claims.FIGURE_1, claims.CURVES):
        assert (study / name).read_bytes()[:4] == b"\x89PNG"
        assert f"]({name})" in report
    # TensorBoard shows the same: read back with its own reader (the Text and Images tabs of claims/report).
    shown = events.event_data(study / claims.REPORT_EVENTS)
    assert events.texts(shown, tags.study("claims", "report")) == [report]
    for name in (claims.FIGURE_1, claims.CURVES):
        image = events.last_png(shown, tags.study("claims", Path(name).stem))
        assert np.array_equal(tf.io.decode_png(image, channels=3), tf.io.decode_png((study / name).read_bytes(), 3))

    # Run again: nothing is retrained, Figure 1 included. Unfinish one run: only that one is.
    trained = []

    def spy(command):  # the runner's `python -m alexnet train ... --run NAME ...`, not run
        trained.append(command[command.index("--run") + 1])
        return 0

    monkeypatch.setattr("alexnet.studies.runner.train_in_own_process", spy)
    monkeypatch.setattr("alexnet.studies.figure1.run_figure1", lambda *a: pytest.fail("Figure 1 ran again"))
    claims.run_study(config, overrides, tmp_path)
    assert trained == []
    (study / "no_dropout-seed1" / "final_metrics.json").unlink()
    with pytest.raises(DataError, match="no_dropout-seed1/final_metrics.json does not exist"):  # the stub did nothing
        claims.run_study(config, overrides, tmp_path)
    assert trained == ["no_dropout-seed1"]


def test_every_arm_of_the_shipped_study_is_a_valid_config_that_changes_one_thing():
    base = load_config(ROOT / "configs" / "claims.yaml")
    for arm, overrides in claims.arms([]).items():
        config = load_config(ROOT / "configs" / "claims.yaml", list(overrides))
        changed = [f"{section}.{key}" for section in ("model", "data", "train")
                   for key, value in vars(getattr(config, section)).items()
                   if getattr(getattr(base, section), key) != value]
        assert len(changed) == (0 if arm == claims.BASELINE else 1), (arm, changed)
