"""`make report`: one self-contained page, read as a reader would: sections, pictures, numbers, no links out."""

import base64
import html
import json
import re
import shutil
from html.parser import HTMLParser

import pytest
import tensorflow as tf

from alexnet import rundir, tags
from alexnet.errors import DataError
from alexnet.records import BestEpoch
from alexnet.rundir import RunDir
from alexnet.studies import report
from alexnet.studies.evaluate import evaluate_run
from helpers import cli, scalars


class Page(HTMLParser):
    """The parts of a page a test reads: section ids, every src/href, images, the tables' cell texts by id."""

    def __init__(self, text: str):
        super().__init__()
        self.text, self.ids, self.links, self.images, self.tables = text, [], [], [], []
        self._cells = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        self.links += [attrs[k] for k in ("src", "href") if k in attrs]
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cells = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cells))
            self._cells = None

    def handle_data(self, data):
        if self._cells is not None:
            self._cells.append(data)


def assert_self_contained(page: Page):
    assert page.links, "no pictures at all"
    for link in page.links:
        assert not re.match(r"(https?:)?//", link), link  # nothing leaves the file
        assert link.startswith("data:image/png;base64,"), link[:60]
    for image in page.images:
        png = base64.b64decode(image["src"].split(",", 1)[1])
        assert tf.io.decode_png(png).shape[0] > 50, image["alt"]


@pytest.mark.slow
def test_the_report_of_a_finished_run_holds_every_section_and_the_runs_own_numbers(tiny_run, tmp_path):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    evaluate_run(run, ["eval.train_sample=20", "eval.projector_images=10"])
    code, out, err = cli(["report", "--logs", str(tmp_path), "--run", "tiny"])
    assert code == 0, err
    page_text = (run / report.REPORT).read_text()
    page = Page(page_text)
    assert {"run", "errors", "curves", "curve-numbers", "evaluation", "figure3", "layers", "config"} <= set(page.ids)
    assert "unfinished" not in page.ids
    assert_self_contained(page)
    assert len(page.images) == 6  # curves, confusion matrix, Figure 4 twice, conv1, layer statistics

    # The numbers are the event files' (TensorBoard's epoch scalars) and the records'.
    train, val = scalars(run / rundir.TRAIN_EVENTS), scalars(run / rundir.VALIDATION_EVENTS)
    header, *rows = next(t for t in page.tables if t[0][:2] == ["epoch", "step"])
    (row,) = rows
    cell = dict(zip(header, row, strict=True))
    assert cell["top1_error"] == f"{train[tags.epoch(tags.TOP1_ERROR)][0][1]:.4%}"
    assert cell["val_top5_error"] == f"{val[tags.epoch(tags.TOP5_ERROR)][0][1]:.4%}"
    assert cell["loss"] == f"{train[tags.epoch(tags.LOSS)][0][1]:.6g}" and cell["step"] == "2"
    best = BestEpoch.read(run / rundir.BEST_RECORD)
    errors = next(t for t in page.tables if t[0] == ["", "epoch", "top-1 error", "top-5 error"])
    assert errors[2] == ["best epoch (kept and exported)", "1", f"{best.val_top1_error:.2%}",
                         f"{best.val_top5_error:.2%}"]
    evaluated = RunDir(run).evaluation()
    table2 = next(t for t in page.tables if t[0] == ["model", "top-1 error", "top-5 error"])
    assert table2[-2] == [f"this run, centre crop (demo {evaluated.data.dir})", f"{evaluated.centre.top1_error:.2%}",
                          f"{evaluated.centre.top5_error:.2%}"]
    info = RunDir(run).info()
    assert f"{info.data.train_images} training and {info.data.val_images} validation" in page_text
    assert info.provenance.machine.line() in html.unescape(page_text)
    expected = {p.name for p in tiny_run.iterdir()} | {rundir.EVAL_RECORD, rundir.EVAL_EVENTS, report.REPORT}
    assert {p.name for p in run.iterdir()} == expected, "the report changes nothing but report.html"


def test_the_rate_drops_are_read_from_the_logged_rates():
    rows = [{"epoch": e, "learning_rate": r} for e, r in enumerate([0.01, 0.01, 0.001, 0.001, 0.0001], start=1)]
    assert report.drop_epochs(rows) == [2, 4]
    # A warm-up climbs and a cosine falls to 0: neither is a division by 10.
    rows = [{"epoch": e, "learning_rate": r} for e, r in enumerate([0.025, 0.1, 0.05, 0.0], start=1)]
    assert report.drop_epochs(rows) == []


@pytest.mark.slow
def test_an_unfinished_run_is_reported_as_such_and_a_missing_or_empty_one_is_refused(tiny_run, tmp_path):
    run = tmp_path / "half"
    shutil.copytree(tiny_run, run)
    (run / rundir.FINAL_METRICS).unlink()
    page = Page(report.write_report(run).read_text())
    assert "unfinished" in page.ids and "curves" in page.ids
    with pytest.raises(DataError, match="does not exist: make report RUN=name"):
        report.write_report(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / rundir.CONFIG).write_text((tiny_run / rundir.CONFIG).read_text())
    with pytest.raises(DataError, match="has no finished epoch to report yet"):
        report.write_report(tmp_path / "empty")


def test_the_studys_page_is_its_report_with_its_pictures_inside(tmp_path):
    study = tmp_path / "claims"
    study.mkdir()
    (study / "claims.json").write_text(json.dumps({"seeds": 6}))
    (study / "report.md").write_text("# The paper's claims, re-run\n\n| claim | verdict |\n|---|---|\n"
                                     "| LRN helps | **holds** |\n\n![Figure 1](figure1.png)\n")
    (study / "figure1.png").write_bytes(tf.io.encode_png(tf.zeros((80, 120, 3), tf.uint8)).numpy())
    page = Page(report.write_report(study).read_text())
    assert "study" in page.ids and ["LRN helps", "holds"] in page.tables[0]
    assert "<h2>The paper's claims, re-run</h2>" in html.unescape(page.text)  # the report's title heads it
    assert_self_contained(page)
    assert len(page.images) == 1
