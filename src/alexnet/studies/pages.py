"""`make publish RUN=name` and `make docs`: what was measured, published as records, and the pages' figures
generated from them, so that a page says only what a record holds.

Publishing copies the records of a finished run, a study or a bench (alexnet/records.py: each names its
command, commit, machine, versions and date) into docs/results/<name>/, and the pictures only a run holds into
docs/ as <name>_<picture>.png:

    a training run       train.json (run info, final metrics, every epoch), first_run.json (`make first-run`),
                         eval.json (`make eval`); conv1's filters and Figure 4 from its event files
    an imported network  imported.json, eval.json
    a study              claims.json or compare.json; its pictures
    logs/<name>.json     a record file as it is (`make bench` writes logs/bench.json)

`make docs` rewrites every generated block of README.md and docs/*.md from docs/results/:

    <!-- make docs: VIEW [NAME] -->
    ...
    <!-- end make docs -->

VIEW is a key of VIEWS, NAME the published result it reads; a table ends with a line naming the command, the
machine, the versions and the date of its record, and a view whose record is not published says so and how to
publish it. It also draws the pictures made from records: each training run's curves (docs/<name>_curves.png)
and each evaluation's Table 2 (docs/<name>_table2.png). tests/test_pages.py fails when a page's blocks differ
from what `make docs` writes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

from alexnet import rundir, tags
from alexnet.config import TrainConfig
from alexnet.errors import DataError
from alexnet.files import write_text
from alexnet.records import (
    BenchResult,
    ClaimsStudy,
    CompareStudy,
    Evaluation,
    FirstRun,
    ImportedNetwork,
    Provenance,
    Record,
    TrainResult,
    read_record,
    training_rate,
)
from alexnet.rundir import RunDir
from alexnet.studies import claims, compare, figures
from alexnet.studies.evaluate import TEN_CROP_ROWS, table2_figure, table2_rows
from alexnet.studies.events import event_data, last_png
from alexnet.studies.report import CURVES, drop_epochs, small_png
from alexnet.studies.runner import study_command

RESULTS = "results"  # docs/results/<name>/<record file>
# The file each published record kind is kept in.
RESULT_FILES = {TrainResult: "train.json", FirstRun: rundir.FIRST_RUN, Evaluation: rundir.EVAL_RECORD,
                ImportedNetwork: rundir.IMPORTED, ClaimsStudy: claims.RECORD, CompareStudy: compare.RECORD,
                BenchResult: "bench.json"}
BLOCK = re.compile(r"(<!-- make docs: (?P<view>[\w-]+)(?: (?P<name>[\w.-]+))? -->\n)(?P<body>.*?)"
                   r"(?P<end><!-- end make docs -->)", re.DOTALL)


# ----- publishing -----


def publish(logs_dir: str | Path, name: str, docs_dir: str | Path = "docs", as_name: str | None = None) -> list[Path]:
    """Publishes logs_dir/name (a run or study directory, or the record file logs_dir/name.json) into
    docs_dir/results/<as_name or name>/ (module doc); returns the files written. DataError when there is nothing
    finished to publish."""
    source, target = Path(logs_dir) / name, as_name or name
    if not source.is_dir() and source.with_suffix(".json").is_file():
        return [publish_record(_read(source.with_suffix(".json")), docs_dir, target)]
    if not source.is_dir():
        raise DataError(f"{source} does not exist: make publish RUN=name publishes logs/name/ (a finished run or "
                        f"study) or logs/name.json (make bench's record)")
    run = RunDir(source)
    for study in (ClaimsStudy, CompareStudy):
        if (source / RESULT_FILES[study]).exists():
            pictures = {path.stem: path.read_bytes() for path in sorted(source.glob("*.png"))}
            return [publish_record(study.read(source / RESULT_FILES[study]), docs_dir, target),
                    *publish_pictures(pictures, docs_dir, target)]
    if not run.finished:
        raise DataError(f"{source} holds no finished run or study: finish it first (make train RUN={name} resumes "
                        f"a run)")
    written = []
    if run.imported:
        written.append(publish_record(run.imported_network(), docs_dir, target))
    else:
        written.append(publish_record(TrainResult(run.name, run.info(), run.final_metrics(), run.history()),
                                      docs_dir, target))
        if (source / rundir.FIRST_RUN).exists():
            written.append(publish_record(FirstRun.read(source / rundir.FIRST_RUN), docs_dir, target))
    pictures = {"conv1_filters": last_png(event_data(source), tags.FILTERS)}
    if (source / rundir.EVAL_RECORD).exists():
        written.append(publish_record(run.evaluation(), docs_dir, target))
        evaluated = event_data(source / rundir.EVAL_EVENTS)
        pictures |= {"figure4_top5": last_png(evaluated, tags.FIGURE4_TOP5),
                     "figure4_nearest_fc7": last_png(evaluated, tags.FIGURE4_NEAREST)}
    written += publish_pictures({k: v for k, v in pictures.items() if v is not None}, docs_dir, target)
    return written


def publish_record(record: Record, docs_dir: str | Path, name: str) -> Path:
    """Writes record as docs_dir/results/<name>/<its file>; returns the path."""
    path = Path(docs_dir) / RESULTS / name / RESULT_FILES[type(record)]
    path.parent.mkdir(parents=True, exist_ok=True)
    record.write(path)
    print(f"publish: {path} ({record.KIND}, {_provenance(record).line()})", flush=True)
    return path


def publish_pictures(pictures: dict[str, bytes], docs_dir: str | Path, name: str) -> list[Path]:
    """Writes each PNG as docs_dir/<name>_<picture>.png, small enough for the pages (report.small_png)."""
    written = []
    for picture, png in pictures.items():
        path = Path(docs_dir) / f"{name}_{picture}.png"
        path.write_bytes(small_png(png))
        written.append(path)
    if written:
        print(f"publish: {', '.join(str(p) for p in written)}", flush=True)
    return written


def _read(path: Path) -> Record:
    """The record file path holds, when it is a kind the pages quote."""
    record = read_record(path)
    if type(record) not in RESULT_FILES:
        raise DataError(f"{path} is a {record.KIND} record, which the pages do not quote")
    return record


def _provenance(record: Record) -> Provenance:
    """The provenance a published record carries (a training run's is its run info's)."""
    return record.info.provenance if isinstance(record, TrainResult) else record.provenance


# ----- the published results -----


class Results:
    """The records published under docs_dir/results/, by name and kind."""

    def __init__(self, docs_dir: str | Path = "docs"):
        self.dir = Path(docs_dir) / RESULTS

    def get(self, name: str, kind: type[Record]):
        """The published record of that kind under name, or None when it is not published."""
        path = self.dir / name / RESULT_FILES[kind]
        return kind.read(path) if path.exists() else None

    def names(self, kind: type[Record]) -> list[str]:
        """The names under which a record of that kind is published, sorted."""
        return sorted(p.parent.name for p in self.dir.glob(f"*/{RESULT_FILES[kind]}"))


def made_line(record: Record) -> str:
    """The line under a table: the command, machine, versions and date of its record."""
    return f"*Measured by {_provenance(record).line()}.*"


def not_published(what: str, command: str, name: str, source: str | None = None) -> str:
    """What a view says in place of a table whose record is not published; source: the logs/ entry the command
    writes, when it is not name (a study is always logs/claims or logs/compare)."""
    publish = f"make publish RUN={source or name}" + (f" AS={name}" if source and source != name else "")
    return f"*Not published from this version: `{command}`, then `{publish}` and `make docs`, writes {what} here.*"


# ----- views: one function per kind of table -----


def percent(value: float, digits: int = 1) -> str:
    """0.0345 as 3.5% (digits after the point)."""
    return f"{value:.{digits}%}"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 419 s, or 8 min 15 s from ten minutes on."""
    if seconds < 600:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def train_view(results: Results, name: str) -> str:
    """A training run's figures: its final and best errors, where the time went, speed, precision, memory, size."""
    result = results.get(name, TrainResult)
    if result is None:
        return not_published(f"run {name}'s figures", f"make train RUN={name}", name)
    final, last, data = result.final, result.last, result.info.data
    rest = final.outside_steps_seconds
    rows = [("final validation top-1 accuracy", f"{percent(1 - last.val_top1_error)} (epoch {last.epoch}), "
                                                f"top-5 {percent(1 - last.val_top5_error)}"),
            ("best epoch (kept and exported)", f"epoch {final.best.epoch}: {percent(1 - final.best.val_top1_error)} "
                                               f"top-1 accuracy, chosen on the split it is reported on"),
            ("the run, start to export", f"{duration(final.wall_seconds)}: {final.train_seconds:.0f} s of training "
                                         f"steps, {final.validation_seconds:.0f} s of validation, {rest:.0f} s "
                                         f"({rest / final.wall_seconds:.0%}) the rest"),
            ("training speed", f"{training_rate(result.history):.1f} img/s in {final.precision}"),
            ("peak memory", f"{final.peak_memory_gb:.1f} GB"),
            ("network and data", f"{final.parameters:,} parameters; {data.train_images:,} training and "
                                 f"{data.val_images:,} validation images of {data.classes} classes ({data.source})")]
    first = results.get(name, FirstRun)
    if first:
        rows.insert(2, ("from a fresh clone (`make first-run`)", f"{duration(first.wall_seconds)}, of which "
                                                                 f"{duration(first.install_seconds)} installing"))
    lines = ["| figure | value |", "|---|---|", *(f"| {what} | {value} |" for what, value in rows), "",
             made_line(result)]
    if first:
        lines.append(made_line(first))
    return "\n".join(lines)


def seeds_view(results: Results, name: str) -> str:
    """Every published run of a recipe over seeds (name, name-seed1, ...): final accuracy and time each."""
    names = [n for n in results.names(TrainResult) if n == name or n.startswith(f"{name}-seed")]
    if not names:
        return not_published(f"{name}'s seeds", f'make train RUN={name}-seed1 ARGS="train.seed=1"', f"{name}-seed1")
    lines = ["| run | command | final validation top-1 accuracy | the run | measured on |", "|---|---|---|---|---|"]
    for run in names:
        result = results.get(run, TrainResult)
        made = result.info.provenance
        lines.append(f"| {run} | `{made.command}` | {percent(1 - result.last.val_top1_error)} | "
                     f"{duration(result.final.wall_seconds)} | {made.machine.processor}, {made.date[:10]} |")
    return "\n".join(lines)


def eval_view(results: Results, name: str) -> str:
    """Table 2's layout with the run's centre-crop and multi-crop errors, the time ratio and LRN's gain spread."""
    result = results.get(name, Evaluation)
    if result is None:
        return not_published(f"run {name}'s evaluation", f"make eval RUN={name}", name)
    lines = ["| model | top-1 error | top-5 error |", "|---|---|---|",
             *(f"| {label} | {percent(top1)} | {percent(top5)} |" for label, top1, top5 in table2_rows(result)), "",
             f"{result.centre.images:,} validation images; the {TEN_CROP_ROWS[result.ten_crop.crops]} pass took "
             f"{result.ten_crop_over_centre_seconds:.1f}x the centre pass's time."]
    if result.lrn_gain_spread:
        spreads = ", ".join(f"{layer} {percent(value)}" for layer, value in result.lrn_gain_spread.items())
        lines.append(f"LRN's gain (output / input) varies across positions by {spreads} (standard deviation over "
                     f"mean, {result.lrn_images} validation images).")
    return "\n".join([*lines, "", made_line(result)])


def bench_view(results: Results, name: str) -> str:
    """make bench's table: images/s (median, min-max), the ratios against their targets, the memory peaks."""
    result = results.get(name, BenchResult)
    if result is None:
        return not_published("the benchmark", "make bench", name)
    s = result.setup
    lines = [f"{s.variant} AlexNet, width {s.width}, batch {s.batch}, {s.num_classes} classes; median of {s.reps} "
             f"timed repetitions after an untimed one; train.precision={s.precision_setting} trains in {s.precision} "
             f"here ({s.precision_why}).", "",
             "| measurement | img/s | min-max |", "|---|---|---|",
             *(f"| {r.label} | {r.median:,.1f} | {r.min:,.1f}-{r.max:,.1f} |" for r in result.rows), "",
             "| ratio | value | target |", "|---|---|---|",
             *(f"| {r.label} | {r.value:.2f}x | {_target(r.target, '>=', r.met)} |" for r in result.ratios), "",
             "| memory | GB | target |", "|---|---|---|",
             *(f"| {m.label} | {m.gb:.2f} | {_target(m.target, '<=', m.met)} |" for m in result.memory), "",
             f"{made_line(result)[:-2]}; the whole bench took {duration(result.seconds)}.*"]
    return "\n".join(lines)


def _target(target: float | None, relation: str, met: bool | None) -> str:
    return "" if target is None else f"{relation} {target:.2f}, {'met' if met else '**missed**'}"


def peers_view(results: Results, name: str) -> str:
    """The bench's ratios against its peers (PyTorch, keras.utils.image_dataset_from_directory), with their rows."""
    result = results.get(name, BenchResult)
    peer_ratios = result.peer_ratios() if result else []
    if not peer_ratios:
        return not_published("the ratios against PyTorch", "make bench PEERS=torch", name)
    lines = ["| ratio | value |", "|---|---|", *(f"| {r.label} | {r.value:.2f}x |" for r in peer_ratios), "",
             made_line(result)]
    return "\n".join(lines)


def claims_view(results: Results, name: str) -> str:
    """The claims study's verdict table (alexnet/studies/claims.py), its seeds and its command."""
    result = results.get(name, ClaimsStudy)
    if result is None:
        return not_published("the claims study's verdicts", "make claims", name, "claims")
    command = study_command("claims", result.config, result.overrides)
    return "\n".join([f"{result.seeds} paired seeds per arm; `{command}`.", "",
                      *claims.verdict_table(result), "", made_line(result)])


def figure1_view(results: Results, name: str) -> str:
    """Figure 1 as the claims study re-ran it: its set-up and the steps to each training error."""
    result = results.get(name, ClaimsStudy)
    if result is None or result.figure1 is None:
        return not_published("Figure 1's re-run", "make claims", name, "claims")
    return "\n".join([claims.figure1_setup(result.figure1), "", *claims.figure1_table(result.figure1), "",
                      made_line(result)])


def compare_view(results: Results, name: str) -> str:
    """The comparison's table (alexnet/studies/compare.py)."""
    result = results.get(name, CompareStudy)
    if result is None:
        return not_published("the comparison", "make compare", name, "compare")
    command = study_command("compare", result.config, result.overrides)
    return "\n".join([f"{result.seeds} paired seed(s) per network, medians; `{command}`.", "",
                      *compare.comparison_table(result), "", made_line(result)])


def verdicts(result: ClaimsStudy) -> str:
    """How many claims hold, are reversed, are not shown (Figure 1's included)."""
    rows = [*([result.figure1_claim] if result.figure1_claim else []), *result.claims]
    counts = {v: sum(r.comparison.verdict == v for r in rows) for v in ("holds", "reversed", "not shown at this scale")}
    return ", ".join(f"{verdict}: {count}" for verdict, count in counts.items() if count)


def summary_view(results: Results, name: str | None = None) -> str:
    """The README's table: one row per published headline result, with its command and where it was measured."""
    rows = []
    demo, first = results.get("demo", TrainResult), results.get("demo", FirstRun)
    if demo:
        final = demo.final
        from_clone = f"; {duration(first.wall_seconds)} from a fresh clone, install included" if first else ""
        rows.append((f"the demo: the paper's network ({final.parameters:,} parameters) on "
                     f"{demo.info.data.train_images:,} generated images of {demo.info.data.classes} classes, "
                     f"{demo.last.epoch} epochs",
                     f"{percent(1 - demo.last.val_top1_error)} final validation top-1 accuracy{from_clone}; the run "
                     f"{duration(final.wall_seconds)} ({training_rate(demo.history):.0f} img/s in {final.precision}), "
                     f"peak memory {final.peak_memory_gb:.1f} GB", "make first-run" if first else "make train", demo))
    evaluated = results.get("demo", Evaluation)
    if evaluated:
        rows.append(("the demo, the paper's evaluation", f"{percent(evaluated.centre.top1_error)} centre-crop and "
                     f"{percent(evaluated.ten_crop.top1_error)} 10-crop top-1 error; LRN's gain varies by "
                     + ", ".join(f"{k} {percent(v)}" for k, v in evaluated.lrn_gain_spread.items()),
                     "make eval", evaluated))
    for study in results.names(ClaimsStudy):
        result = results.get(study, ClaimsStudy)
        rows.append((f"the paper's claims, {result.seeds} paired seeds each ({study})", verdicts(result),
                     study_command("claims", result.config, result.overrides), result))
    for study in results.names(CompareStudy):
        result = results.get(study, CompareStudy)
        errors = ", ".join(f"{arch} {percent(r.val_top1_error)}" for arch, r in result.architectures.items())
        rows.append(("AlexNet beside LeNet-5 and ResNet on the same budget", f"validation top-1 error {errors}",
                     study_command("compare", result.config, result.overrides), result))
    bench = results.get("bench", BenchResult)
    if bench:
        peer = bench.peer_ratios()
        shown = "; ".join(f"{r.label}: {r.value:.2f}x" for r in peer) or (
            f"{bench.row(f'step_{bench.setup.precision}_xla_off').median:.1f} img/s training step")
        rows.append(("a training step on the CPU" + (", beside PyTorch" if peer else ""), shown,
                     "make bench" + (" PEERS=torch" if peer else ""), bench))
    if not rows:
        return "*Nothing is published yet: `make publish RUN=name`, then `make docs`.*"
    lines = ["| what | result | command | measured on |", "|---|---|---|---|"]
    for what, value, command, record in rows:
        made = _provenance(record)
        lines.append(f"| {what} | {value} | `{command}` | {made.machine.processor}, {made.machine.cpus} cores, "
                     f"{made.date[:10]} |")
    return "\n".join(lines)


def contents_view(results: Results, name: str | None = None) -> str:
    """The run directory's entries (alexnet/rundir.py's CONTENTS)."""
    return rundir.contents_table()


MAKE_VARIABLES = ("CONFIG", "RUN", "ARGS", "IMAGES", "WEIGHTS", "PICTURES", "PEERS", "AS", "PORT", "SERVICE_PORT",
                  "WORKERS")
TARGET = re.compile(r"^(?P<target>[a-z-]+):[^#\n]*## (?P<help>.*)$", re.MULTILINE)


def targets_view(results: Results, name: str | None = None) -> str:
    """Every make target with what it does and the variables its recipe reads, from the Makefile itself."""
    makefile = (results.dir.parents[1] / "Makefile").read_text()
    variables = {"RUN_ARGS": ("CONFIG", "RUN", "ARGS")}  # RUN_ARGS := --config $(CONFIG) --run $(RUN) $(ARGS)
    lines = ["| target | what it does | takes |", "|---|---|---|"]
    for match in TARGET.finditer(makefile):
        recipe = "\n".join(line for line in makefile[match.end():].split("\n\n")[0].splitlines()
                           if not line.lstrip().startswith("@echo"))  # help's echo names every variable
        used = {v for v in MAKE_VARIABLES if f"$({v})" in recipe or f"origin {v}" in recipe}
        used |= {v for alias, names in variables.items() if f"$({alias})" in recipe for v in names}
        takes = ", ".join(v for v in MAKE_VARIABLES if v in used) or "nothing"
        lines.append(f"| `make {match['target']}` | {match['help'].replace('|', '/')} | {takes} |")
    return "\n".join(lines)


def guarantees_view(results: Results, name: str | None = None) -> str:
    """What each fault costs a run at the default settings (TrainConfig's defaults), and what a backup costs the
    step (make bench's record, published as name: bench by default)."""
    name, train = name or "bench", TrainConfig()
    every, peer = f"{train.backup_every_seconds:.0f} s", f"{train.peer_timeout_seconds} s"
    rows = [("SIGTERM or Ctrl-C, one process", "nothing trained: the step in progress finishes, is backed up, and the "
                                                "write commits before the process exits (143, 130)"),
            ("SIGKILL, an out-of-memory kill, a lost machine", f"at most `train.backup_every_seconds` ({every}) of "
                                                                f"training, less when an epoch ended since"),
            ("SIGTERM to any worker of a multi-worker job", "nothing trained: every worker stops after the next step, "
                                                            "backed up together, and exits with 143"),
            ("a worker of a job killed or lost", f"the others stop within `train.peer_timeout_seconds` ({peer}; the "
                                                  f"coordination service's heartbeat is usually sooner) with 138; the "
                                                  f"job loses at most {every} of training")]
    bench = results.get(name, BenchResult)
    if bench is None or "backup_wait" not in {r.key for r in bench.ratios}:  # none, or one of an earlier version
        bench, cost = None, not_published("what a backup costs", "make bench", name).strip("*")
    else:
        wait, write = bench.ratio("backup_wait").value, bench.ratio("backup_write").value
        cost = (f"its snapshot adds {percent(wait)} of a step to the steps; the write runs behind them for "
                f"{write:.1f} steps' time ({bench.setup.variant} AlexNet, batch {bench.setup.batch}, "
                f"{bench.setup.precision})")
    rows.append(("a backup", cost))
    lines = ["| fault, at the defaults | what it costs |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    return "\n".join([*lines, "", made_line(bench)] if bench else lines)


VIEWS: dict[str, Callable[[Results, str | None], str]] = {
    "summary": summary_view, "train": train_view, "seeds": seeds_view, "eval": eval_view, "bench": bench_view,
    "peers": peers_view, "claims": claims_view, "figure1": figure1_view, "compare": compare_view,
    "run-contents": contents_view, "targets": targets_view, "guarantees": guarantees_view,
}


# ----- make docs -----


def pages(root: str | Path = ".") -> list[Path]:
    """README.md and every page under docs/."""
    root = Path(root)
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render(text: str, results: Results, page: str = "the page") -> str:
    """text with every generated block rewritten by its view; DataError naming an unknown view."""

    def block(match: re.Match) -> str:
        view = VIEWS.get(match["view"])
        if view is None:
            raise DataError(f"{page} asks for the view {match['view']!r}; make docs has {', '.join(VIEWS)}")
        return f"{match[1]}{view(results, match['name'])}\n{match['end']}"

    return BLOCK.sub(block, text)


def stale_pages(root: str | Path = ".") -> list[Path]:
    """The pages whose generated blocks differ from what make docs writes (nothing is written)."""
    results = Results(Path(root) / "docs")
    return [page for page in pages(root) if (text := page.read_text()) != render(text, results, page.name)]


def write_docs(root: str | Path = ".") -> list[Path]:
    """make docs: rewrites the generated blocks of every page and draws the pictures made from records; returns
    the pages it changed."""
    root = Path(root)
    results = Results(root / "docs")
    changed = []
    for page in pages(root):
        text = page.read_text()
        if (rendered := render(text, results, page.name)) != text:
            write_text(page, rendered)
            changed.append(page)
    for picture, png in record_pictures(results).items():
        (root / "docs" / picture).write_bytes(small_png(png))
    print(f"docs: {len(changed)} page(s) rewritten ({', '.join(p.name for p in changed) or 'none'}); pictures "
          f"from {len(results.names(TrainResult))} run(s) and {len(results.names(Evaluation))} evaluation(s)",
          flush=True)
    return changed


def record_pictures(results: Results) -> dict[str, bytes]:
    """{file name under docs/: PNG} of the pictures drawn from the records: curves and Table 2."""
    pictures = {}
    for name in results.names(TrainResult):
        result = results.get(name, TrainResult)
        rows = [dataclasses.asdict(row) for row in result.history]
        pictures[f"{name}_curves.png"] = figures.training_curves(rows, CURVES, drop_epochs(rows),
                                                                 f"{name}: training curves")
    for name in results.names(Evaluation):
        pictures[f"{name}_table2.png"] = table2_figure(results.get(name, Evaluation))
    return pictures
