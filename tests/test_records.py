"""Typed records (alexnet/records.py): each written and read back equal, a file of another kind or version named
as such, and no other module reading record files or spelling TensorBoard tags."""

import ast
import json

import pytest

from alexnet import records, tags
from alexnet.errors import DataError
from alexnet.records import (
    BestEpoch,
    DataInfo,
    FinalMetrics,
    FittedErrors,
    HistoryRow,
    Machine,
    PlateauHistory,
    PlateauState,
    Provenance,
    RecordError,
    RunInfo,
    TrainResult,
)
from helpers import ROOT

PACKAGE = ROOT / "src" / "alexnet"
MADE = Provenance("make train", "abc123", "2026-12-07T10:00:00+00:00",
                  Machine("a CPU", 2, 24.0, ["avx512_bf16"], [], "Linux"), {"python": "3.11.7", "keras": "3.15.1"})
BEST = BestEpoch(14, 0.05, 0.001)
FINAL = FinalMetrics(BEST, 58_322_314, "mixed_bfloat16", 400.0, 300.0, 20.0, 419.0, 4.2,
                     FittedErrors(0.01, 0.0, 0.05, 120, 0.04, 0.03))
ROW = HistoryRow(1, 23, 2.3, 0.9, 0.5, 2.2, 0.85, 0.45, 0.01, 69.0, 21.0, 1.5, 23.0, 3.9)
INFO = RunInfo(MADE, MADE.date, 0, "_DefaultDistributionStrategy", 1, 1, DataInfo("demo", None, "data/demo", 10,
                                                                                  1500, 500))

# Modules that read JSON other than the records, and what: data-set files, a lock's holder, the environment.
JSON_READERS = {
    "files.py": "the one JSON reader everything goes through",
    "records.py": "every record a command writes and another reads",
    "rundir.py": "classes.json (a list of names) and lock.json (the holder, read while another process may write it)",
    "model.py": "the colour statistics `make prepare` writes beside a data set",
    "data/records.py": "dataset.json of prepared TFRecords",
    "data/demo.py": "the demo data's manifest",
    "data/sources.py": "the folder scan's cache of unreadable files",
    "training/cluster.py": "TF_CONFIG, from the environment",
    "bench/peers.py": "a PyTorch process's job and figures, over its command line and stdout",
}
# Functions whose first argument is a TensorBoard tag (a write or a read of one).
TAG_TAKERS = {"scalar", "image", "text", "histogram", "write", "tensorboard_image", "write_histogram", "texts",
              "last_png", "is_new"}


@pytest.mark.parametrize("record", [BEST, FINAL, INFO, TrainResult("demo", INFO, FINAL, [ROW, ROW]),
                                    PlateauHistory({"0": PlateauState(), "1": PlateauState(1, 0.2, 0)})],
                         ids=lambda r: r.KIND)
def test_a_record_reads_back_equal_through_any_reader(record, tmp_path):
    path = tmp_path / "record.json"
    record.write(path)
    content = json.loads(path.read_text())
    assert list(content)[:2] == ["kind", "version"] and content["kind"] == record.KIND
    assert type(record).read(path) == record
    assert records.read_record(path) == record


def test_a_record_of_another_kind_or_version_or_shape_is_named_with_its_file(tmp_path):
    path = tmp_path / "final_metrics.json"
    FINAL.write(path)
    with pytest.raises(RecordError, match=r"final_metrics.json is not a best_epoch record \('final_metrics'\)"):
        BestEpoch.read(path)
    content = json.loads(path.read_text())
    path.write_text(json.dumps({**content, "version": 0}))
    with pytest.raises(RecordError, match=r"final_metrics.json is a final_metrics record of schema version 0; this "
                                          r"alexnet-keras reads version 1: `make train` writes it anew"):
        FinalMetrics.read(path)
    old = {k: v for k, v in content.items() if k not in ("kind", "version")}  # written before records had a kind
    path.write_text(json.dumps(old))
    with pytest.raises(RecordError, match="is not a final_metrics record \\(no kind\\)"):
        FinalMetrics.read(path)
    del content["parameters"]
    content["best"]["epoch"] = "14"
    content["extra"] = 1
    path.write_text(json.dumps(content))
    with pytest.raises(RecordError, match=r"final_metrics lacks parameters; has unknown extra"):
        FinalMetrics.read(path)
    content.pop("extra")
    content["parameters"] = 1
    path.write_text(json.dumps(content))
    with pytest.raises(RecordError, match=r"final_metrics.best.epoch should be int, not '14'"):
        FinalMetrics.read(path)
    path.write_text('{"kind": "final_metri')  # half a file
    with pytest.raises(RecordError, match="is not JSON"):
        FinalMetrics.read(path)
    with pytest.raises(DataError, match="nothing.json does not exist; `make train` writes it"):
        FinalMetrics.read(tmp_path / "nothing.json")


def test_history_csv_of_another_version_is_named(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,step,loss\n1,2,2.3\n")
    with pytest.raises(RecordError, match="history.csv has the columns"):
        records.read_history(path)


def test_provenance_names_this_machine_the_commit_and_the_versions():
    made = records.provenance(command="make bench", gpus=[])
    assert made.command == "make bench" and made.machine.cpus >= 1 and made.machine.memory_gb > 0
    assert set(made.machine.bfloat16_flags) <= set(records.BFLOAT16_FLAGS)
    assert made.versions["keras"] and made.versions["tensorflow"] and made.versions["python"]
    assert made.commit.removesuffix("+changes").isalnum() and len(made.commit) >= 40  # this checkout's
    assert MADE.line() == ("`make train` on a CPU, 2 cores, avx512_bf16, 24 GB; python 3.11.7, keras 3.15.1; "
                           "2026-12-07, commit abc123")


def calls(tree):
    """(function name, first argument) of every call in tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            yield name, node.args[0] if node.args else None, node


def test_only_the_records_module_reads_record_files():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text())
        readers = [node.lineno for name, _, node in calls(tree) if name in ("read_json", "load", "loads")
                   and (name == "read_json" or getattr(node.func, "value", None) is not None
                        and getattr(node.func.value, "id", "") == "json")]
        if readers:
            assert module in JSON_READERS, f"{module} reads JSON (lines {readers}): read a record through its class"


def test_every_tensorboard_tag_is_named_in_the_tags_module():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "tags.py":
            continue
        for name, first, node in calls(ast.parse(path.read_text())):
            if name in TAG_TAKERS and isinstance(first, (ast.Constant, ast.JoinedStr)):
                tag = first.value if isinstance(first, ast.Constant) else "an f-string"
                if isinstance(tag, str):
                    pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} spells the tag {tag!r}: name it in tags.py")


def test_the_layer_tags_parse_back():
    assert tags.layer_statistic(tags.layer("conv5", tags.GRADIENT_NORM)) == ("conv5", tags.GRADIENT_NORM)
    assert tags.layer_statistic(tags.epoch(tags.LOSS)) is None and tags.layer_statistic("layers/conv5") is None
