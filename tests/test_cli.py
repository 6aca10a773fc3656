"""The command line turns each kind of error into one line on stderr and its documented exit status."""

import re

import pytest

from alexnet import __main__ as entry
from alexnet import errors
from conftest import ROOT, cli, encode, solid


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


def test_each_kind_of_error_has_its_exit_status_and_one_line(tiny_run, other_classes, tmp_path):
    logs = ["--logs", str(tiny_run.parent)]
    cases = [
        (["train", "train.epoch=3"], errors.ConfigError,
         "error: unknown key 'train.epoch'; accepted keys here: epochs"),
        (["export", *logs, "--run", "tiny", "data.dir=x"], errors.ConfigError,
         "error: export uses the run's own config.yaml and takes no overrides: data.dir=x"),
        (["train", "--logs", str(tmp_path), "data.source=folder", "data.dir=/nowhere"], errors.DataError,
         "error: image folder /nowhere/train does not exist: expected /nowhere/train/<class name>/<image>.jpg"),
        (["eval", *logs, "--run", "nope"], errors.DataError,
         f"error: run {tiny_run.parent / 'nope'} does not exist; train it first with `make train RUN=nope`"),
        (["eval", *logs, "--run", "tiny", "data.source=folder", f"data.dir={other_classes}"], errors.DataError,
         f"error: data.source=folder data.dir={other_classes} has 2 classes that do not match the 10 in"),
        (["train", *logs, "--run", "tiny"], errors.RunFinishedError,
         f"error: {tiny_run} already holds a finished run; choose another RUN=name or remove the directory"),
    ]
    for args, kind, message in cases:
        code, out, err = cli(args)
        assert code == kind.exit_code, (args, code, err)
        assert error_line(err).startswith(message), (args, err)


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
