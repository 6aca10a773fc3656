"""`make claims`: the paper's claims re-run as an ablation study, with a computed verdict for each.

Every arm is the study's config (configs/claims.yaml: the scale, the data) with one of the paper's choices
switched off, trained by the study runner (alexnet/studies/runner.py: `python -m alexnet train`, the command
`make train` runs, in a process of its own) once per seed into logs/claims/<arm>-seed<k>/, so TensorBoard
overlays every arm's curves. A finished arm is not trained again: an interrupted study resumes arm by arm
(and an interrupted arm from its backup).

The report (logs/claims/report.md and claims.json) gives, per claim, the paper's figure, every seed's value
in both arms, the paired difference with its 95% interval and p, the minimum detectable effect and a
verdict computed from them (alexnet/studies/paired.py): "holds", "reversed" or "not shown at this
scale". Figure 1 (training error against epochs, ReLU and tanh, with the
threshold line) is drawn beside it and into TensorBoard (logs/claims/report/).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from pathlib import Path

import keras
import numpy as np

from alexnet import tags
from alexnet.config import Config, load_config
from alexnet.data.demo import ensure_demo_data
from alexnet.data.pipeline import dataset_info
from alexnet.errors import ConfigError, DataError
from alexnet.files import write_text
from alexnet.records import (
    ArmRun,
    ClaimResult,
    ClaimsStudy,
    Figure1Run,
    Figure1Summary,
    RecordError,
    provenance,
)
from alexnet.rundir import RunDir
from alexnet.studies import figures
from alexnet.studies.paired import ALPHA, paired_comparison
from alexnet.studies.runner import PlannedRun, publish, study_command, train_unfinished

REPORT, RECORD, REPORT_EVENTS = "report.md", "claims.json", "report"
FIGURE_1, FIGURE_1_RECORD, CURVES = "figure1.png", "figure1.json", "curves.png"


class Metric(enum.StrEnum):
    """What a claim compares; its value is the ArmRun field it reads (LOG_STEPS: Figure 1's, computed there)."""

    VAL_TOP1_ERROR = "val_top1_error"  # the final validation top-1 error
    # The final validation error minus the final weights' error on the training images in inference mode
    # (eval.train_error_images of them): how much the arm overfits.
    GAP = "gap"
    # Optimizer steps until the training error, as Keras averages it during the epoch, first reaches the threshold.
    STEPS = "steps"
    LOG_STEPS = "log_steps"  # Figure 1: ln(steps) to the threshold, tanh against ReLU

    @property
    def heading(self) -> str:
        """The metric as the report's table names it."""
        return {Metric.VAL_TOP1_ERROR: "final val top-1 error",
                Metric.GAP: "val - train top-1 error, both in inference mode (overfitting)",
                Metric.STEPS: "steps to the training-error threshold",
                Metric.LOG_STEPS: "ln(steps) to 25% training error, tanh minus ReLU"}[self]

    def value_text(self, value: float) -> str:
        """One run's value: an error as a percentage, steps as a count."""
        return f"{value:.0f}" if self is Metric.STEPS else f"{value:.1%}"

    def difference_text(self, value: float) -> str:
        """A difference as the reader counts it: steps, ln(steps), or points of error."""
        return {Metric.STEPS: f"{value:+.0f}", Metric.LOG_STEPS: f"{value:+.2f}"}.get(self, f"{value * 100:+.1f} pt")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim: the arm that removes the paper's choice, what is compared, and which way the paper says it goes.
    sign: +1 when the paper predicts the arm's value to be higher than the baseline's, -1 lower."""

    arm: str
    overrides: tuple[str, ...]
    section: str
    statement: str
    paper: str
    metric: Metric
    sign: int


CLAIMS = (
    Claim("no_lrn", ("model.lrn=false",), "3.3", "local response normalisation helps",
          "-1.4% top-1, -1.2% top-5 error", Metric.VAL_TOP1_ERROR, +1),
    Claim("pool2", ("model.pool_size=2",), "3.4", "overlapping pooling (z=3, s=2) beats z=2, s=2",
          "-0.4% top-1, -0.3% top-5; slightly harder to overfit", Metric.VAL_TOP1_ERROR, +1),
    Claim("no_colour_noise", ("model.colour_noise=0",), "4.1", "PCA colour noise helps",
          "-1% top-1 or more", Metric.VAL_TOP1_ERROR, +1),
    Claim("no_augment", ("data.augment=none",), "4.1", "crops and flips prevent overfitting",
          '"substantial overfitting" without them', Metric.GAP, +1),
    Claim("no_dropout", ("model.dropout=0",), "4.2", "dropout prevents overfitting",
          '"substantial overfitting" without it', Metric.GAP, +1),
    Claim("no_dropout", ("model.dropout=0",), "4.2", "dropout slows convergence",
          "about 2x the iterations to converge with it", Metric.STEPS, -1),
    Claim("no_conv3", ("model.remove_conv=conv3",), "7", "depth matters: removing a middle conv layer hurts",
          "about 2% top-1 worse", Metric.VAL_TOP1_ERROR, +1),
)
BASELINE = "baseline"


def arms(selected: list[str]) -> dict[str, tuple[str, ...]]:
    """{arm name: overrides} of the baseline and of the claims' arms (all, or those named in selected)."""
    table = {BASELINE: ()} | {claim.arm: claim.overrides for claim in CLAIMS}
    unknown = sorted(set(selected) - set(table))
    if unknown:
        raise ConfigError(f"claims.arms: unknown arms {unknown}; the arms are {', '.join(table)}")
    return {name: overrides for name, overrides in table.items() if not selected or name in selected}


def run_study(config_path: str, overrides: list[str], logs_dir: str | Path) -> ClaimsStudy:
    """Trains every arm x seed that has not finished, runs Figure 1 unless done, then writes the report;
    returns claims.json's record."""
    made = provenance()
    study = Path(logs_dir) / "claims"
    config = load_config(config_path, overrides)
    ensure_demo_data(config.data)  # the default study runs on the offline demo set; other sources: nothing
    trained_with = list(overrides)  # the user's, and what the study adds for each run
    if config.eval.train_error_images is None:  # the overfitting gap needs the training split in inference mode
        trained_with.append(f"eval.train_error_images={dataset_info(config.data).num_train}")
    plan = [PlannedRun(arm, seed, (*changes, f"train.seed={config.train.seed + seed}"))
            for arm, changes in arms(config.claims.arms).items() for seed in range(config.claims.seeds)]
    start = time.perf_counter()
    train_unfinished(study, config_path, trained_with, plan, "claims")
    figure1 = figure1_result(study, config.claims) if config.claims.figure1 else None
    report = write_report(study, config, config_path, overrides, figure1, made)
    print(f"claims: {len(plan)} runs in {study} ({time.perf_counter() - start:.0f} s this time); "
          f"report {study / REPORT}", flush=True)
    return report


def figure1_result(study: Path, claims_config) -> Figure1Run:
    """Figure 1's experiment (alexnet/studies/figure1.py), run once for these settings and kept in
    study/figure1.json: a resumed study with the same seeds, epochs and threshold reads it back."""
    from alexnet.studies.figure1 import run_figure1

    path = study / FIGURE_1_RECORD
    settings = (claims_config.seeds, claims_config.figure1_epochs, claims_config.train_error_threshold)
    if path.exists():
        try:
            kept = Figure1Run.read(path)
        except RecordError as e:
            print(f"claims: Figure 1 runs again: {e}", flush=True)
        else:
            if (kept.summary.seeds, kept.summary.epochs, kept.summary.threshold) == settings:
                print(f"claims: Figure 1 finished earlier, kept ({path})", flush=True)
                return kept
    keras.backend.clear_session()
    result = run_figure1(*settings)
    study.mkdir(parents=True, exist_ok=True)
    result.write(path)
    return result


def run_summary(run_dir: Path, threshold: float) -> ArmRun:
    """The figures of one finished run, from its final metrics and history.csv."""
    run = RunDir(run_dir)
    final = run.final_metrics()
    if final.fitted is None:
        raise DataError(f"{run_dir} was trained without eval.train_error_images, so its overfitting gap was not "
                        f"measured in inference mode; remove the run directory and run make claims again")
    history = run.history()
    reached = [row.step for row in history if row.top1_error <= threshold]
    last = history[-1]
    steps_per_epoch = history[0].step // history[0].epoch
    # A run that never reaches the threshold counts as one epoch longer than it ran: a lower bound.
    return ArmRun(val_top1_error=last.val_top1_error, best_val_top1_error=final.best.val_top1_error,
                  train_top1_error=final.fitted.train_top1_error, train_top1_error_in_training=last.top1_error,
                  gap=final.fitted.overfitting_gap, steps=reached[0] if reached else last.step + steps_per_epoch,
                  threshold_reached=bool(reached), train_error_by_epoch=[row.top1_error for row in history],
                  val_error_by_epoch=[row.val_top1_error for row in history])


def compare(claim: Claim, base: list[ArmRun], arm: list[ArmRun]) -> ClaimResult:
    """The claim's measured effect, seed by seed: both arms' values, the paired statistics and the verdict
    (alexnet/studies/paired.py)."""
    base_values = [getattr(run, claim.metric) for run in base]
    arm_values = [getattr(run, claim.metric) for run in arm]
    steps = claim.metric is Metric.STEPS
    return ClaimResult(arm=claim.arm, section=claim.section, claim=claim.statement, paper=claim.paper,
                       metric=claim.metric.value, sign=claim.sign, baseline=base_values, arm_values=arm_values,
                       baseline_reached=[run.threshold_reached for run in base] if steps else None,
                       arm_reached=[run.threshold_reached for run in arm] if steps else None,
                       comparison=paired_comparison(base_values, arm_values, claim.sign))


def figure1_claim(figure1: Figure1Summary) -> ClaimResult:
    """Figure 1's verdict at the paper's threshold: the paired steps of ReLU and tanh (log steps, sign-flip
    test), beside the geometric-mean speed-up."""
    at = figure1.thresholds[str(figure1.threshold)]
    logs = {a: np.log(np.asarray(at.steps[a], np.float64)).tolist() for a in ("relu", "tanh")}
    return ClaimResult(arm="tanh", section="3.1, Figure 1", claim="ReLU trains much faster than tanh",
                       paper="25% training error on CIFAR-10 six times sooner with ReLU",
                       metric=Metric.LOG_STEPS.value, sign=+1, baseline=logs["relu"], arm_values=logs["tanh"],
                       baseline_reached=at.reached["relu"], arm_reached=at.reached["tanh"],
                       comparison=paired_comparison(logs["relu"], logs["tanh"], +1))


def write_report(study: Path, config: Config, config_path: str, overrides: list[str],
                 figure1: Figure1Run | None = None, made=None) -> ClaimsStudy:
    """claims.json, report.md, Figure 1 and the arms' curves (PNG and TensorBoard) from the finished runs; made:
    the study's provenance (default: this process's)."""
    threshold = config.claims.train_error_threshold
    names = arms(config.claims.arms)
    runs = {arm: [run_summary(study / f"{arm}-seed{seed}", threshold) for seed in range(config.claims.seeds)]
            for arm in names}
    results = [compare(c, runs[BASELINE], runs[c.arm]) for c in CLAIMS if c.arm in runs and BASELINE in runs]
    record = ClaimsStudy(provenance=made or provenance(), config=config_path, overrides=list(overrides),
                         seeds=config.claims.seeds, train_error_threshold=threshold, claims=results,
                         figure1=figure1.summary if figure1 else None,
                         figure1_claim=figure1_claim(figure1.summary) if figure1 else None, runs=runs)
    record.write(study / RECORD)
    pictures = {CURVES: figures.arm_curves(
        {arm: {"train": [r.train_error_by_epoch for r in rs], "val": [r.val_error_by_epoch for r in rs]}
         for arm, rs in runs.items()}, f"the claims' arms, median of {config.claims.seeds} seeds")}
    if figure1:
        pictures[FIGURE_1] = figures.figure1(
            {"ReLU": figure1.step_errors["relu"], "tanh": figure1.step_errors["tanh"]},
            figure1.summary.steps_per_epoch, figure1.summary.window_steps, threshold,
            "Figure 1 re-run: four-layer CNN, digit scans at 32x32")
    for name, png in pictures.items():
        (study / name).write_bytes(png)
    markdown = report_markdown(record)
    write_text(study / REPORT, markdown)
    publish(study / REPORT_EVENTS, {tags.study("claims", "report"): markdown},
            {tags.study("claims", Path(name).stem): png for name, png in pictures.items()})
    return record


def _seeds(metric: Metric, values: list[float], reached: list[bool] | None) -> str:
    """Every seed's value; '>' marks a step count that is a lower bound (the threshold was never reached)."""
    reached = reached or [True] * len(values)
    return ", ".join(f"{'' if ok else '>'}{metric.value_text(v)}" for v, ok in zip(values, reached, strict=True))


def verdict_table(record: ClaimsStudy) -> list[str]:
    """The verdict table's Markdown lines: per claim (Figure 1's first), the paper's figure, the metric, the mean
    difference with its interval, p, the minimum detectable effect and the verdict."""
    lines = ["| claim (section) | the paper | metric | mean difference [95% interval] | p | detectable | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in [*([record.figure1_claim] if record.figure1_claim else []), *record.claims]:
        metric, c = Metric(r.metric), r.comparison
        low, high = c.interval_95
        detectable = ("none below 6 seeds" if c.minimum_detectable_effect == float("inf")
                      else metric.difference_text(c.minimum_detectable_effect))
        lines.append(f"| {r.claim} ({r.section}) | {r.paper} | {metric.heading} "
                     f"| {metric.difference_text(c.mean_difference)} [{metric.difference_text(low)}, "
                     f"{metric.difference_text(high)}] | {c.p_value:.3f} | {detectable} | **{c.verdict}** |")
    return lines


def report_markdown(record: ClaimsStudy) -> str:
    """The report's Markdown: the command, the verdict table, every seed's values, Figure 1, the curves."""
    command = study_command("claims", record.config, record.overrides)
    lines = [
        "# The paper's claims, re-run", "",
        f"Command: `{command}`; {record.seeds} seeds per arm, paired (the same seed gives the same "
        f"initial weights and data order in every arm). Per claim: the mean of the per-seed differences (arm minus "
        f"baseline) with its 95% bootstrap interval, the exact sign-flip p, and the verdict computed by "
        f"alexnet/studies/paired.py: *holds* (the paper's direction, p < {ALPHA}), *reversed* (the other "
        f"direction, p < {ALPHA}) or *not shown at this scale*; the minimum detectable effect (80% power) says "
        f"how large an effect these seeds could have shown.", "",
        *verdict_table(record),
        "", "Every seed (baseline / without the paper's choice):", "",
    ]
    for r in record.claims:
        metric = Metric(r.metric)
        lines.append(f"- {r.claim}, {metric.heading}: {_seeds(metric, r.baseline, r.baseline_reached)} / "
                     f"{_seeds(metric, r.arm_values, r.arm_reached)}")
    lines += ["", f"Training-error threshold for the speed claims: {record.train_error_threshold:.0%}; a run that "
              "never reached it counts as one epoch longer than it ran (shown as >N, a lower bound).", ""]
    if record.figure1:
        lines += ["## Figure 1 as the paper ran it", "", figure1_setup(record.figure1), "",
                  *figure1_table(record.figure1), "",
                  f"![Figure 1: training error against epochs, ReLU and tanh]({FIGURE_1})", ""]
    lines += [f"![the arms' training and validation error against epochs]({CURVES})", ""]
    return "\n".join(lines)


def figure1_setup(f: Figure1Summary) -> str:
    """Figure 1's set-up in one paragraph: the network, the data, the training, the chosen rates."""
    return (f"A four-layer CNN (cuda-convnet's CIFAR-10 layout without normalisation: conv 32-32-64 5x5, "
            f"max-pool 3/2 after each, softmax), ReLU against tanh, no dropout, weight decay or augmentation, on "
            f"{f.data} ({f.images} images), batch {f.batch}, {f.epochs} epochs, SGD with momentum 0.9. "
            f"Each activation at the rate that reached {f.threshold:.0%} training error fastest "
            f"in a sweep over {', '.join(map(str, f.rates))} (seed 0): ReLU {f.chosen_rates['relu']:g}, "
            f"tanh {f.chosen_rates['tanh']:g}. Steps are counted until the training error over the last "
            f"{f.window_steps} steps first reaches the threshold.")


def figure1_table(f: Figure1Summary) -> list[str]:
    """Figure 1's table: steps per seed to each training error, ReLU and tanh, and the speed-up."""
    lines = ["| training error | ReLU steps per seed | tanh steps per seed | tanh / ReLU, geometric mean [95%] | "
             "the paper |", "|---|---|---|---|---|"]
    for level, at in f.thresholds.items():
        up = at.speed_up
        steps = {a: ", ".join(f"{'' if ok else '>'}{s}" for s, ok in zip(at.steps[a], at.reached[a], strict=True))
                 for a in ("relu", "tanh")}
        lines.append(f"| {float(level):.0%} | {steps['relu']} | {steps['tanh']} | {up.geometric_mean:.2f}x "
                     f"[{up.interval_95[0]:.2f}, {up.interval_95[1]:.2f}] | "
                     f"{'6x (CIFAR-10)' if float(level) == f.threshold else ''} |")
    return lines
