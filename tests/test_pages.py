"""The pages say only what a record holds: every generated block of README.md and docs/ is what `make docs` writes
from docs/results/, and publishing a run puts its records and pictures where the pages read them."""

import re
import shutil

import pytest

from alexnet import rundir
from alexnet.errors import DataError
from alexnet.records import BestEpoch, Evaluation, TrainResult
from alexnet.rundir import RunDir
from alexnet.studies import pages
from alexnet.studies.evaluate import evaluate_run
from alexnet.training.driver import next_commands
from helpers import ROOT, cli


def test_every_generated_block_of_the_pages_is_what_make_docs_writes():
    stale = pages.stale_pages(ROOT)
    assert stale == [], f"{[p.name for p in stale]} differ from docs/results/: run make docs"


def test_every_published_record_reads_and_every_page_of_figures_has_blocks():
    results = pages.Results(ROOT / "docs")
    published = sorted(p.relative_to(results.dir).as_posix() for p in results.dir.glob("*/*.json"))
    kinds = {file: kind for kind, file in pages.RESULT_FILES.items()}
    for path in published:
        name, file = path.split("/")
        assert results.get(name, kinds[file]) is not None, path  # each reads as the record its file names
    for page in pages.pages(ROOT):
        for match in pages.BLOCK.finditer(page.read_text()):
            assert match["view"] in pages.VIEWS, (page.name, match["view"])


def test_the_readme_lists_what_a_finished_run_prints_next():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"and what to run next:\n\n```sh\n(.*?)```", readme, re.DOTALL)[1]
    listed = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    printed = [command.split("   (")[0].replace('"path/to/image.jpg"', '"cat.jpg dog.png"')
               for _, command in next_commands("demo")]
    assert listed == printed


def test_the_targets_table_reads_the_makefile():
    table = pages.targets_view(pages.Results(ROOT / "docs"))
    rows = {row.split(" | ")[0].strip("| `"): row.split(" | ")[-1].strip(" |") for row in table.splitlines()[2:]}
    assert rows["make eval"] == "RUN, ARGS" and rows["make export"] == "RUN" and rows["make predict"] == "RUN, IMAGES"
    assert rows["make train"] == "CONFIG, RUN, ARGS" and rows["make help"] == "nothing"
    assert rows["make import"] == "RUN, ARGS, WEIGHTS" and rows["make bench"] == "CONFIG, RUN, ARGS, PEERS"


@pytest.mark.slow
def test_a_published_run_reaches_its_pages_and_an_unpublished_one_says_so(tiny_run, tmp_path):
    logs, docs = tmp_path / "logs", tmp_path / "docs"
    shutil.copytree(tiny_run, logs / "tiny")
    evaluate_run(logs / "tiny", ["eval.train_sample=20", "eval.projector_images=10"])
    code, out, err = cli(["publish", "--logs", str(logs), "--run", "tiny", "--docs", str(docs)])
    assert code == 0, out + err
    published = pages.Results(docs)
    run = published.get("tiny", TrainResult)
    assert run.final == RunDir(logs / "tiny").final_metrics() and run.history == RunDir(logs / "tiny").history()
    assert published.get("tiny", Evaluation) == RunDir(logs / "tiny").evaluation()
    for picture in ("conv1_filters", "figure4_top5", "figure4_nearest_fc7"):
        assert (docs / f"tiny_{picture}.png").read_bytes()[:4] == b"\x89PNG", picture

    (tmp_path / "README.md").write_text("# page\n\n<!-- make docs: train tiny -->\nstale\n<!-- end make docs -->\n"
                                        "<!-- make docs: eval tiny -->\n<!-- end make docs -->\n"
                                        "<!-- make docs: compare nothing -->\n<!-- end make docs -->\n")
    assert pages.stale_pages(tmp_path) == [tmp_path / "README.md"]
    code, out, err = cli(["docs", "--root", str(tmp_path), "--check"])
    assert code == 3 and "run make docs" in err
    assert pages.write_docs(tmp_path) == [tmp_path / "README.md"] and pages.stale_pages(tmp_path) == []
    page = (tmp_path / "README.md").read_text()
    best = BestEpoch.read(logs / "tiny" / rundir.BEST_RECORD)
    assert f"epoch 1: {1 - best.val_top1_error:.1%} top-1 accuracy" in page
    assert f"{run.final.peak_memory_gb:.1f} GB" in page and run.info.provenance.machine.processor in page
    evaluated = published.get("tiny", Evaluation)
    assert f"| {evaluated.centre.top1_error:.1%} |" in page and "*Measured by `called from Python: " in page
    assert "Not published from this version: `make compare`, then `make publish RUN=compare AS=nothing`" in page
    for picture in ("tiny_curves.png", "tiny_table2.png"):  # drawn from the records
        assert (docs / picture).read_bytes()[:4] == b"\x89PNG", picture
    (tmp_path / "README.md").write_text("<!-- make docs: plot tiny -->\n<!-- end make docs -->\n")
    with pytest.raises(DataError, match="README.md asks for the view 'plot'"):
        pages.write_docs(tmp_path)
    with pytest.raises(DataError, match="holds no finished run or study"):
        (logs / "half").mkdir()
        pages.publish(logs, "half", docs)
