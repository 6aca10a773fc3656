"""`make compare`: the contrasts AlexNet is known by, measured on the same data, pipeline, schedule and report.

Every architecture of COMPARED (LeNet-5 before AlexNet, ResNet-18, plain-18 and ResNet-50 after it;
alexnet/architectures.py) trains with configs/compare.yaml's data and budget, paired seeds (the same seed
gives the same data order), each run trained by the study runner (alexnet/studies/runner.py: a process of its
own, so its peak memory is its own; a finished run is kept) into logs/compare/<arch>-seed<k>/, so TensorBoard
overlays their curves.

The report (logs/compare/report.md, compare.json, in TensorBoard under logs/compare/report/) gives per
architecture: parameters, multiply-adds per image, training images/s (the steps of the run) and inference
images/s (the best model on a fixed batch, here), peak memory, validation top-1/top-5 error (median over
seeds, every seed's too) and the time to a stated validation accuracy; and the skip connections' contrast:
every layer's gradient norm at the start and after the first epoch (the runs' layer statistics), ResNet-18
against plain-18, as a figure (gradients.png).
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.architectures import multiply_adds
from alexnet.config import load_config
from alexnet.data.demo import ensure_demo_data
from alexnet.export import load_best_model
from alexnet.files import write_text
from alexnet.records import ArchRun, ArchSummary, CompareStudy, provenance, training_rate
from alexnet.rundir import RunDir
from alexnet.studies import figures
from alexnet.studies.events import event_data, scalar_series
from alexnet.studies.runner import PlannedRun, publish, study_command, train_unfinished

REPORT, RECORD, GRADIENTS, REPORT_EVENTS = "report.md", "compare.json", "gradients.png", "report"
# What each architecture changes in configs/compare.yaml (which is AlexNet's): LeNet-5 takes 32x32 inputs.
COMPARED = {
    "lenet5": ("model.arch=lenet5", "model.image_size=32", "data.resize_size=36"),
    "alexnet": ("model.init=he_normal", "model.zero_fc8=true"),  # the demo's start (docs/model.md, "Every run learns")
    "resnet18": ("model.arch=resnet18",),
    "plain18": ("model.arch=plain18",),
    "resnet50": ("model.arch=resnet50",),
}
INFERENCE_BATCH, INFERENCE_REPS = 32, 5


def run_study(config_path: str, overrides: list[str], logs_dir: str | Path) -> CompareStudy:
    """Trains every architecture x seed not finished yet, then writes the report; returns compare.json's record."""
    made = provenance()
    study = Path(logs_dir) / "compare"
    config = load_config(config_path, overrides)
    ensure_demo_data(config.data)
    plan = [PlannedRun(arch, seed, (*changes, f"train.seed={config.train.seed + seed}"))
            for arch, changes in COMPARED.items() for seed in range(config.compare.seeds)]
    start = time.perf_counter()
    train_unfinished(study, config_path, overrides, plan, "compare")
    record = write_report(study, config, config_path, overrides, made)
    print(f"compare: {len(plan)} runs in {study} ({time.perf_counter() - start:.0f} s this time); report "
          f"{study / REPORT}", flush=True)
    return record


def inference_rate(model: keras.Model) -> float:
    """Images/s of the model on a fixed uint8 batch (median of INFERENCE_REPS after a warm-up call)."""
    size = model.input.shape[1]
    batch = np.random.default_rng(0).integers(0, 256, (INFERENCE_BATCH, size, size, 3), dtype=np.uint8)
    predict = tf.function(lambda x: model(x, training=False))
    predict(batch)
    seconds = []
    for _ in range(INFERENCE_REPS):
        start = time.perf_counter()
        predict(batch).numpy()
        seconds.append(time.perf_counter() - start)
    return INFERENCE_BATCH / float(np.median(seconds))


def run_figures(run_dir: Path, target_error: float) -> ArchRun:
    """One finished run's figures, from its history.csv and final_metrics.json."""
    run = RunDir(run_dir)
    final, history = run.final_metrics(), run.history()
    elapsed = np.cumsum([row.train_seconds + row.validation_seconds for row in history])
    reached = [t for t, row in zip(elapsed, history, strict=True) if row.val_top1_error <= target_error]
    return ArchRun(val_top1_error=history[-1].val_top1_error, val_top5_error=history[-1].val_top5_error,
                   best_val_top1_error=final.best.val_top1_error, train_images_per_second=training_rate(history),
                   peak_memory_gb=final.peak_memory_gb,
                   seconds_to_target=float(reached[0]) if reached else None, epochs=len(history))


def gradient_norms(run_dir: Path) -> dict[str, dict[str, float]]:
    """{"start" / "after epoch 1": {layer: gradient norm}} from the run's layer statistics (steps 0 and the
    first epoch's end)."""
    norms = {}  # {layer: {step: gradient norm}}
    for tag, values in scalar_series(event_data(run_dir / rundir.TRAIN_EVENTS)).items():
        layer, statistic = tags.layer_statistic(tag) or (None, None)
        if statistic == tags.GRADIENT_NORM:
            norms[layer] = dict(values)
    steps = sorted({step for by_step in norms.values() for step in by_step})
    after = min((s for s in steps if s >= RunDir(run_dir).history()[0].step), default=steps[-1])
    return {label: {layer: by_step[step] for layer, by_step in norms.items() if step in by_step}
            for label, step in (("start", steps[0]), ("after epoch 1", after))}


def write_report(study: Path, config, config_path: str, overrides: list[str], made=None) -> CompareStudy:
    """compare.json, report.md and the gradients figure from the finished runs under study; made: the study's
    provenance (default: this process's)."""
    seeds = config.compare.seeds
    target = 1 - config.compare.target_accuracy  # the validation error the time is measured to
    rows = {}
    for arch in COMPARED:
        runs = [run_figures(study / f"{arch}-seed{seed}", target) for seed in range(seeds)]
        keras.backend.clear_session()
        model = load_best_model(RunDir(study / f"{arch}-seed0"))  # the network as trained: its size and speed
        rows[arch] = ArchSummary(
            parameters=model.count_params(), multiply_adds=int(multiply_adds(model)), image_size=model.input.shape[1],
            inference_images_per_second=inference_rate(model), runs=runs,
            val_top1_error=float(np.median([r.val_top1_error for r in runs])),
            val_top5_error=float(np.median([r.val_top5_error for r in runs])),
            train_images_per_second=float(np.median([r.train_images_per_second for r in runs])),
            peak_memory_gb=float(np.median([r.peak_memory_gb for r in runs])))
        keras.backend.clear_session()
    gradients = {arch: gradient_norms(study / f"{arch}-seed0") for arch in ("resnet18", "plain18")}
    record = CompareStudy(provenance=made or provenance(), config=config_path, overrides=list(overrides), seeds=seeds,
                          target_val_error=target, architectures=rows, gradient_norms=gradients)
    record.write(study / RECORD)
    png = figures.gradient_norms({f"{arch}, {when}": norms for arch, by_time in gradients.items()
                                  for when, norms in by_time.items()},
                                 "gradient norm of every layer: ResNet-18 against plain-18 (no shortcuts)")
    (study / GRADIENTS).write_bytes(png)
    markdown = report_markdown(record)
    write_text(study / REPORT, markdown)
    publish(study / REPORT_EVENTS, {tags.study("compare", "report"): markdown},
            {tags.study("compare", "gradients"): png})
    return record


def comparison_table(record: CompareStudy) -> list[str]:
    """The comparison's table, one row per architecture (medians over the seeds), as Markdown lines."""
    target = record.target_val_error
    lines = ["| network | input | parameters | multiply-adds / image | train img/s | inference img/s | peak memory "
             f"| val top-1 error | val top-5 error | time to {1 - target:.0%} accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for arch, r in record.architectures.items():
        reached = [run.seconds_to_target for run in r.runs if run.seconds_to_target is not None]
        some = "" if len(reached) == len(r.runs) else f" ({len(reached)} of {len(r.runs)} seeds)"
        to_target = f"{np.median(reached):.0f} s{some}" if reached else "not reached"
        lines.append(f"| {arch} | {r.image_size}x{r.image_size} | {r.parameters:,} | "
                     f"{r.multiply_adds / 1e6:,.1f} M | {r.train_images_per_second:.0f} | "
                     f"{r.inference_images_per_second:.0f} | {r.peak_memory_gb:.1f} GB | "
                     f"{r.val_top1_error:.1%} | {r.val_top5_error:.1%} | {to_target} |")
    return lines


def report_markdown(record: CompareStudy) -> str:
    """The comparison's table, every seed, and the gradients figure."""
    target = record.target_val_error
    command = study_command("compare", record.config, record.overrides)
    lines = ["# AlexNet compared with LeNet-5 and ResNet", "",
             f"Command: `{command}`; {record.seeds} paired seeds per network; medians over the seeds; "
             f"images/s and memory on this machine. Time to {1 - target:.0%} validation accuracy: training and "
             f"validation seconds until the first epoch that reached it.", "", *comparison_table(record),
             "", "Every seed's final validation top-1 error:", ""]
    for arch, r in record.architectures.items():
        lines.append(f"- {arch}: " + ", ".join(f"{run.val_top1_error:.1%}" for run in r.runs))
    lines += ["", f"![gradient norms, ResNet-18 and plain-18]({GRADIENTS})", ""]
    return "\n".join(lines)
