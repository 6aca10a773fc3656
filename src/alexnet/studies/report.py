"""`make report RUN=name`: one self-contained HTML page of a run, or of the claims study, to share.

The page opens offline in any browser: styles inline, every picture an embedded PNG, no script, font or
link that leaves the file. It is a read-only view of what the run already wrote: config.yaml, run.json,
best.json, final_metrics.json, eval.json, and the TensorBoard event files, read with
TensorBoard's own reader (EventAccumulator): the curves' numbers are the event files' numbers, and the
pictures TensorBoard shows (conv1's filters, Figure 4, the confusion matrix) are the very PNGs in them.
Nothing is recomputed; the curves are drawn with matplotlib.

Each section is a small function returning its HTML (escaped with html.escape): the page has no loops or
conditions a template would make clearer, so it needs no template engine.

A run without final_metrics.json is reported as unfinished; a study (logs/claims, logs/compare: claims.json
or compare.json beside report.md) gives the study's page: its report, with its pictures, in the same style.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from pathlib import Path

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from alexnet import rundir, tags
from alexnet.errors import DataError
from alexnet.files import write_text
from alexnet.records import BestEpoch
from alexnet.rundir import RunDir
from alexnet.studies import claims, compare, figures
from alexnet.studies.evaluate import table2_figure, table2_rows
from alexnet.studies.events import event_data, last_png, scalar_series, texts

REPORT = "report.html"
STUDY_RECORDS = (claims.RECORD, compare.RECORD)  # beside report.md, what makes a directory a study's
STUDY_REPORT = claims.REPORT
PICTURE_LIMIT = 250_000  # bytes of a picture written with --pictures (the pictures of README.md and docs/ stay small)
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: .6em 1em; }
.warning { background: #fde2e1; border: 1px solid #e08a85; padding: .6em 1em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; } dt { font-weight: 600; }
"""
CURVES = ((tags.LOSS, "loss"), (tags.TOP1_ERROR, "top-1 error"), (tags.TOP5_ERROR, "top-5 error"),
          (tags.LEARNING_RATE, "learning rate"), (tags.IMAGES_PER_SECOND, "images/s (training steps)"),
          (tags.PEAK_MEMORY_GB, "peak memory (GB)"))
LAYER_STATISTICS = (tags.ACTIVATION_RMS, tags.DEAD_FRACTION, tags.GRADIENT_NORM)


def write_report(run_dir: str | Path, pictures_dir: str | Path | None = None) -> Path:
    """Writes run_dir/report.html (atomically) and returns its path; DataError for a missing or empty run.

    pictures_dir: also write the page's pictures there as <run name>_<picture>.png (as docs/ holds them).
    """
    run, pictures = RunDir(run_dir), Pictures()
    if not run.path.is_dir():
        raise DataError(f"{run.path} does not exist: make report RUN=name reports logs/name/ (a run, or claims)")
    if any((run / name).exists() for name in STUDY_RECORDS) and (run / STUDY_REPORT).exists():
        title, body = f"{run.name}: a study", study_body(run, pictures)
    else:
        title, body = f"{run.name}: a training run", run_body(run, pictures)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
            f"<p><small>Written by <code>make report</code> on "
            f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC} from {html.escape(str(run.path))}"
            f"</small></p>\n</body></html>\n")
    write_text(run / REPORT, page)
    print(f"report: {run / REPORT} ({len(page) / 1e6:.1f} MB; open it in any browser, offline)", flush=True)
    if pictures_dir:
        Path(pictures_dir).mkdir(parents=True, exist_ok=True)
        for name, png in pictures.items():
            (Path(pictures_dir) / f"{run.name}_{name}.png").write_bytes(small_png(png))
        print(f"report: {len(pictures)} pictures in {pictures_dir}: {', '.join(sorted(pictures))}", flush=True)
    return run / REPORT


def small_png(png: bytes, limit: int = PICTURE_LIMIT) -> bytes:
    """png, or the same picture in 256 colours, then at half the size while needed, when it is over limit bytes."""
    if len(png) <= limit:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.quantize(256).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= limit:
            return buffer.getvalue()
        image = image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


# ----- reading what the run wrote -----


def epoch_table(train: dict, validation: dict) -> list[dict]:
    """One row per epoch: the epoch_* scalars of the training and validation event files, by step."""
    steps = sorted({step for step, _ in train.get(tags.epoch(tags.LOSS), [])})
    rows = []
    for epoch, step in enumerate(steps, start=1):
        row = {"epoch": epoch, "step": step}
        for source, prefix in ((train, ""), (validation, "val_")):
            for name, _ in CURVES:
                value = dict(source.get(tags.epoch(name), [])).get(step)
                if value is not None:
                    row[prefix + name] = value
        rows.append(row)
    return rows


def drop_epochs(rows: list[dict]) -> list[int]:
    """The epochs after which the learning rate was divided by 10: those whose last step's rate (the epoch's
    logged rate) is ten times the next epoch's, whichever schedule or rule divided it."""
    rates = [(row["epoch"], row.get("learning_rate")) for row in rows]
    return [epoch for (epoch, rate), (_, after) in zip(rates[:-1], rates[1:], strict=True)
            if rate and after and math.isclose(after, rate / 10, rel_tol=1e-3)]


# ----- HTML pieces -----


class Pictures(dict):
    """The page's pictures by name, kept as they are embedded (make report --pictures writes them as files)."""

    def tag(self, name: str, png: bytes, alt: str) -> str:
        """An <img> with the PNG embedded as a data URI; the PNG is kept under name."""
        self[name] = png
        return f'<img alt="{html.escape(alt)}" src="{data_uri(png)}">'


def data_uri(png: bytes) -> str:
    """The PNG inside the page, as a data URI (nothing the page shows lives outside it)."""
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


def table(header: list[str], rows: list[list]) -> str:
    """A plain HTML table; cells are escaped text."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def section(anchor: str, title: str, content: str) -> str:
    """A titled <section> the page's readers (and its test) find by its id."""
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{content}\n</section>'


def percent(value) -> str:
    """An error as a percentage ("" for none)."""
    return "" if value is None else f"{value:.2%}"


# ----- a run's page -----


def run_body(run: RunDir, pictures: Pictures) -> str:
    """Every section of a training run's page, those the run has the files for."""
    root = event_data(run.path)
    if run.imported:  # trained elsewhere: no epochs to read
        return imported_body(run, root, pictures)
    train, validation = (event_data(run / name) for name in (rundir.TRAIN_EVENTS, rundir.VALIDATION_EVENTS))
    train_scalars, val_scalars = scalar_series(train), scalar_series(validation)
    rows = epoch_table(train_scalars, val_scalars)
    if not rows:
        raise DataError(f"{run.path} has no finished epoch to report yet (no epoch scalars in "
                        f"{run / rundir.TRAIN_EVENTS}): train it first with `make train RUN={run.name}`")
    parts = [] if run.finished else [
        f'<p class="banner" id="unfinished"><b>Unfinished run</b>: {len(rows)} epoch(s) so far and no '
        f"{rundir.FINAL_METRICS}; run <code>make train RUN={html.escape(run.name)}</code> again to resume it.</p>"]
    stalls = texts(root, tags.STALL)
    if stalls:
        parts.append('<div class="warning" id="stall">' + "".join(f"<p>{html.escape(t)}</p>" for t in stalls)
                     + "</div>")
    parts += [what_was_run(run), errors_section(run, rows), curves_section(run, rows, pictures)]
    if (run / rundir.EVAL_RECORD).exists():
        parts.append(evaluation_section(run, event_data(run / rundir.EVAL_EVENTS), pictures))
    parts += figure3_section(root, pictures)
    if any(tags.layer_statistic(tag) for tag in train_scalars):
        parts.append(layers_section(train_scalars, pictures))
    parts.append(section("config", "The resolved configuration (config.yaml)",
                         f"<pre>{html.escape((run / rundir.CONFIG).read_text())}</pre>"))
    return "\n".join(parts)


def imported_body(run: RunDir, root: EventAccumulator | None, pictures: Pictures) -> str:
    """The page of a network trained elsewhere (`make import`): where it came from, its evaluation if made,
    conv1's filters (the paper's Figure 3) and the config."""
    record = run.imported_network()
    parts = [section("run", "An imported network", f"<p>{html.escape(record.layout)}'s trained AlexNet, "
                     f"{record.parameters:,} parameters, from <code>{html.escape(record.weights)}</code>; "
                     f"published centre-crop errors on ILSVRC-2012 validation: {percent(record.published_top1_error)} "
                     f"top-1, {percent(record.published_top5_error)} top-5. It was not trained here.</p>")]
    if (run / rundir.EVAL_RECORD).exists():
        parts.append(evaluation_section(run, event_data(run / rundir.EVAL_EVENTS), pictures))
    parts += figure3_section(root, pictures)
    parts.append(section("config", "The resolved configuration (config.yaml)",
                         f"<pre>{html.escape((run / rundir.CONFIG).read_text())}</pre>"))
    return "\n".join(parts)


def figure3_section(root: EventAccumulator | None, pictures: Pictures) -> list[str]:
    """conv1's filters as the run's events last show them (the paper's Figure 3), when they do."""
    filters = last_png(root, tags.FILTERS)
    if filters is None:
        return []
    return [section("figure3", "conv1's filters (the paper's Figure 3)",
                    pictures.tag("conv1_filters", filters, "conv1 filters"))]


def what_was_run(run: RunDir) -> str:
    """The command, the data set and its size, the machine, the versions, the date and the duration."""
    info, model = run.info(), run.load_config().model
    made, data = info.provenance, info.data
    items = {
        "command": made.command,
        "model": f"{model.variant}, width {model.width}, {model.image_size}x{model.image_size} inputs",
        "data": f"{data.source} {data.name or data.dir}: {data.train_images} training and {data.val_images} "
                f"validation images in {data.classes} classes",
        "machine": f"{made.machine.line()}; {info.strategy}, {info.replicas} replica(s), {info.workers} worker(s)",
        "versions": ", ".join(f"{k} {v}" for k, v in made.versions.items()),
        "commit": made.commit or "(not in a git checkout)",
        "started": made.date + (f" (resumed {info.resumes} time(s))" if info.resumes else ""),
        "duration": "(unfinished)",
    }
    if run.finished:
        final = run.final_metrics()
        items["duration"] = (f"{final.wall_seconds / 60:.1f} min in all: {final.train_seconds / 60:.1f} min of "
                             f"training steps, {final.validation_seconds / 60:.1f} min of validation; peak memory "
                             f"{final.peak_memory_gb:.1f} GB; precision {final.precision}")
    content = "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items.items())
    return section("run", "What was run", content + "</dl>")


def errors_section(run: RunDir, rows: list[dict]) -> str:
    """The final epoch's and the best epoch's validation errors."""
    last = rows[-1]
    body = [["final epoch", last["epoch"], percent(last.get("val_top1_error")), percent(last.get("val_top5_error"))]]
    if (run / rundir.BEST_RECORD).exists():
        best = BestEpoch.read(run / rundir.BEST_RECORD)
        body.append(["best epoch (kept and exported)", best.epoch, percent(best.val_top1_error),
                     percent(best.val_top5_error)])
    return section("errors", "Validation errors", table(["", "epoch", "top-1 error", "top-5 error"], body))


def curves_section(run: RunDir, rows: list[dict], pictures: Pictures) -> str:
    """Loss, top-1 and top-5 error (training and validation), learning rate and images/s against epochs, the
    learning-rate drops marked; with the numbers as a table."""
    drops = drop_epochs(rows)
    png = figures.training_curves(rows, CURVES, drops, f"{run.name}: training curves")
    columns = [name for name, _ in CURVES] + [f"val_{name}" for name in ("loss", "top1_error", "top5_error")]
    body = [[r["epoch"], r["step"], *(_cell(c, r.get(c)) for c in columns)] for r in rows]
    note = (f"<p>Learning rate divided by 10 after epoch(s) {', '.join(map(str, drops))} (dotted lines).</p>"
            if drops else "")
    return section("curves", "Training curves", pictures.tag("curves", png, "training curves") + note
                   + '<details id="curve-numbers"><summary>the numbers (TensorBoard\'s epoch scalars)</summary>'
                   + table(["epoch", "step", *columns], body) + "</details>")


def _cell(column: str, value) -> str:
    """A curve's number as the table shows it: errors as percentages with 4 decimals, the rest 6 digits."""
    if value is None:
        return ""
    return f"{value:.4%}" if column.endswith("error") else f"{value:.6g}"


def evaluation_section(run: RunDir, eval_data: EventAccumulator | None, pictures: Pictures) -> str:
    """Table 2 as make eval wrote it, the per-class errors, the confusion matrix and Figure 4."""
    result = run.evaluation()
    name = result.data.name or result.data.dir
    pictures["table2"] = table2_figure(result)
    rows = [[label, percent(top1), percent(top5)] for label, top1, top5 in table2_rows(result)]
    comparable = "" if name == "imagenet2012" else ": not comparable with the published rows"
    parts = [table(["model", "top-1 error", "top-5 error"], rows),
             f"<p>Published figures: ILSVRC-2012 validation set (50,000 images); this run: "
             f"{result.centre.images} validation images of {html.escape(str(name))}{comparable}.</p>",
             "<h3>Per-class top-1 error (centre crop), worst first</h3>",
             table(["class", "top-1 error", "images"], [[r.name, percent(r.top1_error), r.images]
                                                        for r in result.per_class])]
    for tag, title in ((tags.CONFUSION, "Confusion matrix"),
                       (tags.FIGURE4_TOP5, "The paper's Figure 4, left: top-5 predictions"),
                       (tags.FIGURE4_NEAREST, "The paper's Figure 4, right: nearest training images in fc7")):
        png = last_png(eval_data, tag)
        if png is not None:
            parts += [f"<h3>{html.escape(title)}</h3>", pictures.tag(tag.split("/")[1], png, title)]
    return section("evaluation", "Evaluation as in the paper (Table 2)", "\n".join(parts))


def layers_section(train_scalars: dict, pictures: Pictures) -> str:
    """The per-layer statistics against steps (tensorboard.layer_stats_steps)."""
    series = {statistic: {} for statistic in LAYER_STATISTICS}
    for tag, values in train_scalars.items():
        layer, statistic = tags.layer_statistic(tag) or (None, None)
        if statistic in series:
            series[statistic][layer] = values
    png = figures.layer_statistics(series)
    return section("layers", "Per-layer statistics of the probe batch",
                   pictures.tag("layer_statistics", png, "per-layer statistics"))


# ----- the claims study's page -----


def study_body(run: RunDir, pictures: Pictures) -> str:
    """The study's report.md as HTML, its pictures embedded; its first heading titles the section."""
    import markdown  # TensorBoard's own dependency, for its text dashboard

    heading, _, text = (run / STUDY_REPORT).read_text().partition("\n")
    rendered = markdown.markdown(text, extensions=["tables"])
    for path in sorted(run.path.glob("*.png")):
        pictures[path.stem] = png = path.read_bytes()
        rendered = rendered.replace(f'src="{path.name}"', f'src="{data_uri(png)}"')
    return section("study", heading.lstrip("# "), rendered.replace("<h2>", "<h3>").replace("</h2>", "</h3>"))
