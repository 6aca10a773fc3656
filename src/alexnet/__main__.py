"""Command line: `python -m alexnet COMMAND [options]`, or `alexnet COMMAND [options]` where the package is
installed; `python -m alexnet COMMAND --help` for one command, `--version` for the installed version.

Only parses arguments, calls the function that does the work, and turns its errors into one line on
stderr and an exit status (the table in alexnet/errors.py). The Makefile calls it; a job controller that
must see those exit statuses runs it directly (make turns every failure into 2).

--config takes a YAML file or a shipped config's name (demo, imagenet2012, ...: configs/, installed with the
package); relative paths (--logs, a config's data.dir) are the working directory's, and the demo data is made
there on first use: any empty directory runs `alexnet train --config demo`.

    train, lr-find, claims, compare, summary, data, digits, prepare, bench
                                                          --config FILE|NAME [--run NAME] [key=value ...]
    eval                                                             --run NAME [key=value ...]  (other data)
    export, report                                                   --run NAME
    predict                                                          --run NAME IMAGE [IMAGE ...]
    import                         --weights imagenet|FILE --run NAME [--config FILE|NAME] [key=value ...]
    data-service                                                     [--port P] [--workers N]
    publish                                                          --run NAME [--as NAME] [--docs DIR]
    docs                                                             [--root DIR] [--check]
    first-run                                                        [--run NAME]
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path

from alexnet.errors import INTERRUPTED_EXIT_CODE, AlexNetError, ConfigError, DataError
from alexnet.native_logs import import_tensorflow_quietly

CONFIG_COMMANDS = {
    "train": "train --config into logs/RUN/, resuming from its backup; export the best model",
    "lr-find": "learning-rate range test on the config's data",
    "claims": "the paper's claims re-run as an ablation study into logs/claims/",
    "compare": "AlexNet beside LeNet-5, ResNet-18, plain-18 and ResNet-50 into logs/compare/",
    "summary": "the Keras summary of the config's model",
    "data": "generate the offline demo data set",
    "digits": "write the real-image check set (scanned digits as photos)",
    "prepare": "write the config's data as sharded TFRecords",
    "bench": "training-step and input-pipeline throughput; logs/bench.json",
}
FILE_READERS = ("train", "lr-find", "claims", "compare")  # the commands whose runs read the config's files
DISTRIBUTION = "alexnet-keras"  # pyproject.toml's name: --version reads its installed metadata
CONFIG_HELP = "a shipped config's name (demo, imagenet2012, ...) or a YAML file"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are ConfigErrors: one line on stderr and exit status 2, like the rest."""

    def error(self, message):
        raise ConfigError(f"{self.prog}: {message} (`{self.prog} --help` lists what it takes)")


def build_parser() -> argparse.ArgumentParser:
    """One sub-command parser per command, each with only the options it takes."""
    parser = Parser(prog="python -m alexnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in CONFIG_COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", default="demo", help=CONFIG_HELP)
        command.add_argument("--run", default=None, help="run name: output goes to LOGS/RUN/ (default: the "
                                                         "config's name)")
        command.add_argument("--logs", default="logs", help="parent directory of run directories")
        command.add_argument("overrides", nargs="*", metavar="section.key=value")
    for name, help_text in (("eval", "the paper's evaluation of a finished run (its own config)"),
                            ("export", "export a run's best model as a SavedModel"),
                            ("report", "one self-contained HTML page of a run (or of logs/claims) to share"),
                            ("predict", "top-5 classes of image files with a run's exported model")):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--run", required=True, help="the run's name under LOGS/")
        command.add_argument("--logs", default="logs", help="parent directory of run directories")
        if name == "eval":
            command.add_argument("overrides", nargs="*", metavar="section.key=value",
                                 help="other data to evaluate on, e.g. data.dir=other/images")
        elif name == "predict":
            command.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG, PNG, BMP or GIF files")
        elif name == "report":
            command.add_argument("--pictures", default=None, metavar="DIR",
                                 help="also write the page's pictures as PNG files into DIR (e.g. docs/)")
    imported = commands.add_parser("import", help="a network torchvision or Caffe trained, as a finished run",
                                   description="a network torchvision or Caffe trained, as a finished run")
    imported.add_argument("--weights", required=True, help="imagenet (torchvision's, downloaded once), or a "
                                                            "torchvision .pth or BVLC .caffemodel file")
    imported.add_argument("--run", required=True, help="the run's name under LOGS/")
    imported.add_argument("--logs", default="logs", help="parent directory of run directories")
    imported.add_argument("--config", default="imagenet2012", help=f"the data it is evaluated on: {CONFIG_HELP}")
    imported.add_argument("overrides", nargs="*", metavar="section.key=value")
    service = commands.add_parser("data-service", help="a tf.data service dispatcher and workers in this process")
    service.add_argument("--port", type=int, default=5050, help="the dispatcher's port")
    service.add_argument("--workers", type=int, default=1, help="workers to start")
    published = commands.add_parser("publish", help="a finished run's, study's or bench's records into docs/results/",
                                    description="a finished run's, study's or bench's records into docs/results/")
    published.add_argument("--run", required=True, help="LOGS/NAME (a run or study) or LOGS/NAME.json (a record)")
    published.add_argument("--logs", default="logs", help="parent directory of run directories")
    published.add_argument("--as", dest="as_name", default=None, help="the name to publish under (default: NAME)")
    published.add_argument("--docs", default="docs", help="the docs folder (results go to DOCS/results/)")
    pages = commands.add_parser("docs", help="regenerate the figures of README.md and docs/ from docs/results/",
                                description="regenerate the figures of README.md and docs/ from docs/results/")
    pages.add_argument("--root", default=".", help="the checkout holding README.md and docs/")
    pages.add_argument("--check", action="store_true", help="change nothing; exit 3 when a page is out of date")
    first = commands.add_parser("first-run", help="time make install and make train in a fresh clone",
                                description="time make install and make train in a fresh clone")
    first.add_argument("--run", default="demo", help="the run directory under LOGS/ the clone's run moves to")
    first.add_argument("--logs", default="logs", help="parent directory of run directories")
    commands.choices["bench"].add_argument("--peers", action="append", default=[], choices=["torch"],
                                           help="also time PyTorch's step (`make bench PEERS=torch` installs it)")
    return parser


def version() -> str:
    """This package's installed version (its metadata); where it is not installed, says so."""
    try:
        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION} (not installed: `pip install .` or `make install`)"


def main(argv=None) -> int:
    """Runs one command; returns the process exit status."""
    # TensorFlow's C++ logs: fatal only, unless the user asks for more (TF_CPP_MIN_LOG_LEVEL=0 shows all);
    # real failures surface as Python exceptions.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            raise ConfigError(f"python -m alexnet {args.command} does not take {' '.join(extra)} "
                              f"(`python -m alexnet {args.command} --help` lists what it takes)")
        import_tensorflow_quietly()  # its start-up lines are filtered here; everything after is ours
        run_command(args)
    except AlexNetError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    return 0


def run_command(args: argparse.Namespace) -> None:
    """Dispatches a parsed command line to the module that does the work."""
    if args.command == "data-service":
        from alexnet.data.service import serve

        return serve(args.port, args.workers)
    if args.command in ("eval", "export", "predict", "report"):
        return run_run_command(args)
    if args.command in ("publish", "docs", "first-run"):
        return run_pages_command(args)
    if args.command == "import":
        from alexnet.training.imported import import_weights

        return import_weights(args.weights, Path(args.logs) / args.run, args.config, args.overrides)

    from alexnet.config import load_config

    run_dir = Path(args.logs) / (args.run or Path(args.config).stem)
    # Only the commands that train read model.init_from and model.colour_stats: `make digits` needs neither.
    config = load_config(args.config, args.overrides, check_files=args.command in FILE_READERS)
    if args.command == "claims":
        from alexnet.studies.claims import run_study

        run_study(args.config, args.overrides, args.logs)
    elif args.command == "compare":
        from alexnet.studies.compare import run_study

        run_study(args.config, args.overrides, args.logs)
    elif args.command == "summary":
        from alexnet.architectures import build_from_config

        build_from_config(config.model, num_classes=config.model.num_classes or 1000).summary(line_length=100)
    elif args.command == "data":
        from alexnet.data.demo import ensure_demo_data

        ensure_demo_data(config.data)
    elif args.command == "digits":
        from alexnet.data.digits import ensure_digits_data

        ensure_digits_data(config.data)
    elif args.command == "prepare":
        from alexnet.data.records import prepare

        prepare(config.data)
    elif args.command == "train":
        from alexnet.training.driver import train_and_evaluate

        train_and_evaluate(config, run_dir)
    elif args.command == "lr-find":
        from alexnet.studies.lr_find import find_learning_rate

        find_learning_rate(config, run_dir)
    elif args.command == "bench":
        from alexnet.bench.suite import run_benchmarks

        run_benchmarks(config, Path(args.logs), peers=args.peers)


def run_pages_command(args: argparse.Namespace) -> None:
    """publish, docs or first-run: the records the pages quote, and the pages."""
    if args.command == "first-run":
        from alexnet.bench.first_run import first_run

        return first_run(args.logs, args.run)
    from alexnet.studies import pages

    if args.command == "publish":
        return pages.publish(args.logs, args.run, args.docs, args.as_name)
    if not args.check:
        return pages.write_docs(args.root)
    stale = pages.stale_pages(args.root)
    if stale:
        raise DataError(f"out of date with docs/results/: {', '.join(str(p) for p in stale)}; run make docs")
    print("docs: every generated block matches docs/results/", flush=True)


def run_run_command(args: argparse.Namespace) -> None:
    """eval, export, report or predict of an existing run, with the run's own config."""
    run_dir = Path(args.logs) / args.run
    if args.command == "eval":
        from alexnet.studies.evaluate import evaluate_run

        evaluate_run(run_dir, args.overrides)
    elif args.command == "export":
        from alexnet.export import export_run

        export_run(run_dir)
    elif args.command == "report":
        from alexnet.studies.report import write_report

        write_report(run_dir, args.pictures)
    else:
        from alexnet.export import predict_files

        predict_files(run_dir, args.images)


if __name__ == "__main__":
    sys.exit(main())
