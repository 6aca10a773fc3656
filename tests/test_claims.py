"""`make claims`: verdicts from hand-made numbers, a tiny study end to end, and resuming arm by arm."""

import json

import pytest

from alexnet.config import load_config
from alexnet.errors import ConfigError, DataError
from alexnet.studies import claims
from helpers import ROOT, TINY


def test_verdicts_follow_the_seed_spread():
    assert claims.verdict(0.05, 0.01) == "holds"
    assert claims.verdict(-0.05, 0.01) == "reversed"
    assert claims.verdict(0.01, 0.01) == "within noise" and claims.verdict(-0.004, 0.01) == "within noise"


def test_compare_signs_the_effect_the_way_the_paper_predicts():
    lrn = next(c for c in claims.CLAIMS if c.arm == "no_lrn")
    base = [{"val_top1_error": 0.20}, {"val_top1_error": 0.22}]
    worse = [{"val_top1_error": 0.30}, {"val_top1_error": 0.31}]
    result = claims.compare(lrn, base, worse)
    assert result["difference"] == pytest.approx(0.095) and result["seed_spread"] == pytest.approx(0.02)
    assert result["verdict"] == "holds"
    assert claims.compare(lrn, worse, base)["verdict"] == "reversed"
    assert claims.compare(lrn, base, [{"val_top1_error": 0.215}, {"val_top1_error": 0.19}])["verdict"] == \
        "within noise"
    converge = next(c for c in claims.CLAIMS if c.arm == "no_dropout" and c.metric == "steps")
    faster = [{"steps": 40}, {"steps": 50}]
    slower = [{"steps": 100, "threshold_reached": True}, {"steps": 130, "threshold_reached": False}]
    assert claims.compare(converge, slower, faster)["verdict"] == "holds"  # without dropout: fewer steps


def test_unknown_arms_are_refused():
    with pytest.raises(ConfigError, match=r"unknown arms \['relu6'\]"):
        claims.arms(["relu6"])


@pytest.mark.slow
def test_a_tiny_study_runs_writes_its_report_and_resumes_arm_by_arm(small_data, tmp_path, monkeypatch):
    overrides = [*TINY, f"data.dir={small_data}", "data.demo_images_per_class=12", "train.epochs=2",
                 "train.global_batch_size=8", "train.steps_per_epoch=3", "tensorboard.images=false",
                 "tensorboard.histograms=false", "tensorboard.layer_stats_steps=0", "claims.arms=[baseline, tanh]",
                 "claims.seeds=2", "claims.train_error_threshold=0.95"]
    config = str(ROOT / "configs" / "demo.yaml")
    record = claims.run_study(config, overrides, tmp_path)
    study = tmp_path / "claims"
    assert sorted(p.name for p in study.iterdir() if p.is_dir()) == [
        "baseline-seed0", "baseline-seed1", "report", "tanh-seed0", "tanh-seed1"]
    assert json.loads((study / claims.RECORD).read_text())["claims"] == record["claims"]
    (speed,) = record["claims"]
    assert speed["arm"] == "tanh" and speed["metric"] == "steps" and len(speed["baseline"]) == 2
    # The verdict the run's own numbers imply (the paper predicts more steps for tanh: sign +1).
    implied = "within noise" if abs(speed["difference"]) <= speed["seed_spread"] else (
        "holds" if speed["difference"] > 0 else "reversed")
    assert speed["verdict"] == implied, speed
    report = (study / claims.REPORT).read_text()
    assert "ReLU trains much faster than tanh (3.1, Figure 1)" in report and f"**{speed['verdict']}**" in report
    assert (study / claims.FIGURE_1).read_bytes()[:4] == b"\x89PNG"

    # Run again: nothing is retrained. Unfinish one run: only that one is.
    trained = []
    monkeypatch.setattr("alexnet.training.driver.train_and_evaluate",
                        lambda config, run_dir: trained.append(run_dir.name))
    claims.run_study(config, overrides, tmp_path)
    assert trained == []
    (study / "tanh-seed1" / "final_metrics.json").unlink()
    with pytest.raises(DataError, match="tanh-seed1/final_metrics.json does not exist"):  # the stub trained nothing
        claims.run_study(config, overrides, tmp_path)
    assert trained == ["tanh-seed1"]


def test_every_arm_of_the_shipped_study_is_a_valid_config_that_changes_one_thing():
    base = load_config(ROOT / "configs" / "claims.yaml")
    for arm, overrides in claims.arms([]).items():
        config = load_config(ROOT / "configs" / "claims.yaml", list(overrides))
        changed = [f"{section}.{key}" for section in ("model", "data", "train")
                   for key, value in vars(getattr(config, section)).items()
                   if getattr(getattr(base, section), key) != value]
        assert len(changed) == (0 if arm == claims.BASELINE else 1), (arm, changed)
