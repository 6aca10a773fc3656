"""The command line turns each kind of error into one line on stderr and its documented exit status."""

import os
import re
import subprocess
import sys

import pytest

from alexnet import __main__ as entry
from alexnet import errors, native_logs
from helpers import ROOT, encode, side_by_side, solid


def error_line(stderr: str) -> str:
    """The one line the CLI printed for the error; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def other_classes(tmp_path_factory):
    """A folder data set whose classes are not the tiny run's."""
    root = tmp_path_factory.mktemp("other")
    for split in ("train", "val"):
        for name in ("apple", "pear"):
            (root / split / name).mkdir(parents=True)
            (root / split / name / "a.jpg").write_bytes(encode(solid("RGB", (1, 2, 3)), "JPEG"))
    return root


@pytest.mark.slow
def test_each_kind_of_error_has_its_exit_status_and_one_line(tiny_run, other_classes, tmp_path):
    logs = ["--logs", str(tiny_run.parent)]
    cases = [
        (["train", "train.epoch=3"], errors.ConfigError,
         "error: unknown key 'train.epoch'; accepted keys here: epochs"),
        (["export", *logs, "--run", "tiny", "data.dir=x"], errors.ConfigError,
         "error: python -m alexnet export does not take data.dir=x (`python -m alexnet export --help` lists"),
        (["data-service", "--port", "x"], errors.ConfigError,
         "error: python -m alexnet data-service: argument --port: invalid int value: 'x'"),
        (["train", "--workers", "2"], errors.ConfigError, "error: python -m alexnet train does not take --workers"),
        (["train", "--logs", str(tmp_path), "data.source=folder", "data.dir=/nowhere"], errors.DataError,
         "error: image folder /nowhere/train does not exist: expected /nowhere/train/<class name>/<image>.jpg"),
        (["eval", *logs, "--run", "nope"], errors.DataError,
         f"error: run {tiny_run.parent / 'nope'} does not exist; train it first with `make train RUN=nope`"),
        (["eval", *logs, "--run", "tiny", "data.source=folder", f"data.dir={other_classes}"], errors.DataError,
         f"error: data.source=folder data.dir={other_classes} has 2 classes that do not match the 10 in"),
        (["train", *logs, "--run", "tiny"], errors.RunFinishedError,
         f"error: {tiny_run} already holds a finished run; choose another RUN=name or remove the directory"),
    ]
    for (args, kind, message), (code, _, err) in zip(cases, side_by_side(*(c[0] for c in cases)), strict=True):
        assert code == kind.exit_code, (args, code, err)
        assert error_line(err).startswith(message), (args, err)


def test_only_the_commands_that_train_need_the_files_the_config_names(tmp_path, monkeypatch):
    missing = f"model.init_from={tmp_path}/none.keras"
    called = []
    monkeypatch.setattr("alexnet.data.demo.ensure_demo_data", lambda data: called.append(data.source))
    assert entry.main(["data", "--config", "configs/folder.yaml", missing]) == 0 and called == ["folder"]
    assert entry.main(["train", "--config", "configs/folder.yaml", "--logs", str(tmp_path), missing]) == 3


def test_a_lost_peer_and_an_interrupt_ask_for_a_restart(monkeypatch, capsys):
    def peer_lost(args):
        raise errors.PeerLostError("worker 1 stopped answering: restart all workers with the same command")

    monkeypatch.setattr(entry, "run_command", peer_lost)
    assert entry.main(["train"]) == 138
    assert capsys.readouterr().err == "error: worker 1 stopped answering: restart all workers with the same command\n"

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(entry, "run_command", interrupted)
    assert entry.main(["train"]) == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_the_exit_code_table_is_documented_where_users_look():
    documented = {int(code): meaning for code, meaning in
                  re.findall(r"^\| (\d+) \| ([^|]+) \|", errors.__doc__, flags=re.MULTILINE)}
    kinds = [errors.AlexNetError, *errors.AlexNetError.__subclasses__()]
    assert {kind.exit_code for kind in kinds} | {0, errors.INTERRUPTED_EXIT_CODE} == set(documented)
    readme = (ROOT / "README.md").read_text()
    for code, meaning in documented.items():
        assert f"| {code} | {meaning.strip()} |" in readme, code


@pytest.mark.slow
def test_a_command_prints_only_the_projects_own_output_unless_more_is_asked_for():
    def summary(**env):
        base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
        return subprocess.run([sys.executable, "-m", "alexnet", "summary", "--config", "configs/claims.yaml"], cwd=ROOT,
                              env={**base, **env}, capture_output=True, text=True, timeout=300)

    quiet = summary()  # as a newcomer runs it: nothing set
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.startswith('Model: "alexnet_paper"')
    loud = summary(TF_CPP_MIN_LOG_LEVEL="0")  # asked for: TensorFlow's start-up lines come through
    assert loud.returncode == 0 and re.search(r"^I\d{4} .*", loud.stderr, flags=re.MULTILINE), loud.stderr


def test_the_start_up_filter_keeps_what_the_level_asks_for():
    info = "I0000 00:00:1796157484.032184    2397 port.cc:153] oneDNN custom operations are on.\n"
    error = "E0000 00:00:1796157484.1    2397 cuda.cc:1] failed call to cuInit\n"
    banner = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    other = "Segmentation fault in a library that is not TensorFlow\n"
    assert [native_logs._is_hidden(line, 1) for line in (info, error, banner, other)] == [True, False, True, False]
    assert [native_logs._is_hidden(line, 3) for line in (info, error, banner, other)] == [True, True, True, False]


def test_the_readmes_exit_code_table_is_the_one_in_errors_py():
    table = errors.__doc__[errors.__doc__.index("| code |"):].strip()
    assert table in (ROOT / "README.md").read_text()
    codes = [int(line.split("|")[1]) for line in table.splitlines()[2:]]
    assert codes == sorted(codes) and {5, 6, 7, 130, 138, 143} <= set(codes)
