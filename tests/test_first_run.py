"""`make first-run`: the clone's run lands in logs/RUN/ with its timing record; an existing run is never replaced."""

import dataclasses

import pytest

from alexnet import rundir
from alexnet.bench import first_run
from alexnet.errors import RunFinishedError
from alexnet.records import DataInfo, FirstRun, RunInfo, provenance

RUN_INFO = RunInfo(provenance("python -m alexnet train --config configs/demo.yaml --run demo", gpus=[]),
                   "2026-12-08T00:00:00+00:00", 0, "_DefaultDistributionStrategy", 1, 1,
                   DataInfo("demo", None, "data/demo", 10, 1500, 370))


def test_the_clones_run_moves_into_logs_with_its_timing(tmp_path, monkeypatch):
    steps = []

    def step(command, cwd, label):  # instead of git clone, make install and make train
        steps.append(label)
        if label == "git clone":
            (tmp_path / "logs" / ".first-run-clone" / "logs" / first_run.DEMO_RUN).mkdir(parents=True)
        if label == "make train":
            RUN_INFO.write(cwd / "logs" / first_run.DEMO_RUN / rundir.RUN_INFO)
            (cwd / "logs" / first_run.DEMO_RUN / rundir.FINAL_METRICS).write_text("{}")

    monkeypatch.setattr(first_run, "_step", step)
    record = first_run.first_run(tmp_path / "logs", "demo-clean")
    assert steps == ["git clone", "make install", "make train"]
    run = tmp_path / "logs" / "demo-clean"
    assert (run / rundir.FINAL_METRICS).exists() and not (tmp_path / "logs" / ".first-run-clone").exists()
    assert FirstRun.read(run / rundir.FIRST_RUN) == record
    assert record.wall_seconds >= record.install_seconds >= 0
    # The clone's run's commit, machine and versions, with the command that timed it.
    assert record.provenance == dataclasses.replace(RUN_INFO.provenance, command=record.provenance.command)
    assert record.provenance.command.startswith("make first-run RUN=demo-clean")
    with pytest.raises(RunFinishedError, match="demo-clean exists"):
        first_run.first_run(tmp_path / "logs", "demo-clean")
