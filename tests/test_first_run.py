"""`make first-run`: the clone's run lands in logs/RUN/ with its timing record; an existing run is never replaced."""

import pytest

from alexnet import rundir
from alexnet.bench import first_run
from alexnet.errors import RunFinishedError
from alexnet.records import FirstRun, code_commit


def test_the_clones_run_moves_into_logs_with_its_timing(tmp_path, monkeypatch):
    steps = []

    def step(command, cwd, label):  # instead of git clone, make install and make train
        steps.append(label)
        if label == "git clone":
            (tmp_path / "logs" / ".first-run-clone" / "logs" / first_run.DEMO_RUN).mkdir(parents=True)
        if label == "make train":
            (cwd / "logs" / first_run.DEMO_RUN / rundir.FINAL_METRICS).write_text("{}")

    monkeypatch.setattr(first_run, "_step", step)
    record = first_run.first_run(tmp_path / "logs", "demo-clean")
    assert steps == ["git clone", "make install", "make train"]
    run = tmp_path / "logs" / "demo-clean"
    assert (run / rundir.FINAL_METRICS).exists() and not (tmp_path / "logs" / ".first-run-clone").exists()
    assert FirstRun.read(run / rundir.FIRST_RUN) == record
    assert record.wall_seconds >= record.install_seconds >= 0
    assert record.provenance.commit == code_commit().removesuffix("+changes")  # the clone's: what is committed
    assert record.provenance.command.startswith("make first-run RUN=demo-clean")
    with pytest.raises(RunFinishedError, match="demo-clean exists"):
        first_run.first_run(tmp_path / "logs", "demo-clean")
