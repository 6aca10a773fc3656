"""The run directory: one table of its entries (docs/runs.md shows it), atomic JSON, the run's own config and
classes."""

import json
import os

import pytest

from alexnet import rundir
from alexnet.config import load_config
from alexnet.errors import DataError, RunFinishedError
from alexnet.files import write_json
from alexnet.rundir import RunDir
from helpers import ROOT


def test_the_docs_show_the_run_directory_table():
    assert rundir.contents_table() in (ROOT / "docs" / "runs.md").read_text()
    names = [value for key, value in vars(rundir).items() if key.isupper() and isinstance(value, str)]
    table = rundir.contents_table()
    assert all(f"`{name}" in table for name in names), "every run entry is in the table"


def test_write_json_replaces_whole_files_only(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_json(path, {"epoch": 1})
    assert json.loads(path.read_text()) == {"epoch": 1} and os.listdir(tmp_path) == ["state.json"]

    def killed(*args):
        raise KeyboardInterrupt  # as if the process died between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"epoch": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"epoch": 1}
    write_json(path, {"epoch": 3})
    assert json.loads(path.read_text()) == {"epoch": 3}


def test_a_run_is_read_back_with_its_own_config_and_classes(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(DataError, match="train it first with `make train RUN=run`"):
        run.load_config()
    config = load_config(None, ["train.epochs=3", "data.dir=somewhere"])
    run.start(config)
    write_json(run / rundir.CLASSES, ["cat", "dog"])
    assert run.load_config() == config
    assert run.load_config(["data.dir=elsewhere"]).data.dir == "elsewhere"
    assert run.class_names() == ["cat", "dog"]
    run.check_classes(["cat", "dog"], "the data")
    with pytest.raises(DataError, match=r"names only one side has: \['cow'\]"):
        run.check_classes(["cat", "cow", "dog"], "the data")
    with pytest.raises(DataError, match="the same names in another order"):
        run.check_classes(["dog", "cat"], "the data")
    with pytest.raises(DataError, match="best.keras does not exist; train more"):
        run.require(rundir.BEST_MODEL, "train more")
    (run / rundir.FINAL_METRICS).write_text("")  # finished: the file is there
    with pytest.raises(RunFinishedError, match="already holds a finished run"):
        run.start(config)
