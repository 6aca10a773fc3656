"""`make eval`: the errors of a run's best model on the validation split.

The run is evaluated with its own resolved config; command-line overrides may point it at other data
(data.dir, data.source, ...), whose class names must then be the run's.
"""

from __future__ import annotations

from pathlib import Path

from alexnet.export import load_best_model
from alexnet.input_pipeline import make_dataset
from alexnet.metrics import errors
from alexnet.rundir import RunDir
from alexnet.sources import dataset_info


def evaluate_run(run_dir: str | Path, overrides: list[str] = ()) -> dict:
    """Top-1 / top-5 error and loss of run_dir's best model on the validation split (centre crop).

    Checked before any work: the run, its best model, and data with the run's class names.
    """
    run = RunDir(run_dir)
    config = run.load_config(overrides)
    model = load_best_model(run)
    data = config.data
    run.check_classes(dataset_info(data).class_names, f"data.source={data.source} data.dir={data.dir}")
    val = make_dataset(data, "val", config.model.image_size, config.train.global_batch_size)
    results = model.evaluate(val, return_dict=True, verbose=2)
    metrics = errors(results)
    print(f"{run.path}: validation top-1 error {metrics['top1_error']:.2%}, top-5 error {metrics['top5_error']:.2%}")
    return metrics
