"""Command line: `python -m alexnet COMMAND --config FILE --run NAME [section.key=value ...]`.

Only parses arguments, calls the function that does the work, and turns its errors into one line on
stderr and an exit status (the table in alexnet/errors.py); the Makefile is the user's interface.
train, lr-find, claims, summary, data, digits, prepare and bench read --config; eval, export and predict
read the run's own config (eval accepts overrides that choose other data).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alexnet.errors import INTERRUPTED_EXIT_CODE, AlexNetError, ConfigError

CONFIG_COMMANDS = ("train", "lr-find", "claims", "summary", "data", "digits", "prepare", "bench")
SERVICE_COMMANDS = ("data-service",)
RUN_COMMANDS = ("eval", "export", "predict")


def main(argv=None) -> int:
    """Runs one command; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m alexnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=CONFIG_COMMANDS + RUN_COMMANDS + SERVICE_COMMANDS)
    parser.add_argument("--config", default="configs/demo.yaml", help="YAML file under configs/")
    parser.add_argument("--run", default=None, help="run name: output goes to logs/RUN/")
    parser.add_argument("--logs", default="logs", help="parent directory of run directories")
    parser.add_argument("--port", type=int, default=5050, help="data-service: the dispatcher's port")
    parser.add_argument("--workers", type=int, default=1, help="data-service: workers to start")
    parser.add_argument("rest", nargs="*", help="section.key=value overrides (predict: also image files)")
    args = parser.parse_intermixed_args(argv)
    try:
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
    overrides = [a for a in args.rest if "=" in a]
    files = [a for a in args.rest if "=" not in a]
    if files and args.command != "predict":
        raise ConfigError(f"not an override of the form section.key=value: {' '.join(files)}")
    run_dir = Path(args.logs) / (args.run or Path(args.config).stem)
    if args.command == "data-service":
        from alexnet.data_service import serve

        return serve(args.port, args.workers)
    if args.command in RUN_COMMANDS:
        if overrides and args.command != "eval":
            raise ConfigError(f"{args.command} uses the run's own config.yaml and takes no overrides: "
                              f"{' '.join(overrides)}")
        return run_run_command(args.command, run_dir, overrides, files)

    from alexnet.config import load_config

    config = load_config(args.config, overrides)
    if args.command == "claims":
        from alexnet.claims import run_study

        run_study(args.config, overrides, args.logs)
        return
    if args.command == "summary":
        from alexnet.model import build_from_config

        build_from_config(config.model, num_classes=config.model.num_classes or 1000).summary(line_length=100)
    elif args.command == "data":
        from alexnet.demo_data import ensure_demo_data

        ensure_demo_data(config.data)
    elif args.command == "digits":
        from alexnet.digits_data import ensure_digits_data

        ensure_digits_data(config.data)
    elif args.command == "prepare":
        from alexnet.prepare import prepare

        prepare(config.data)
    elif args.command == "train":
        from alexnet.train import train_and_evaluate

        train_and_evaluate(config, run_dir)
    elif args.command == "lr-find":
        from alexnet.lr_find import find_learning_rate

        find_learning_rate(config, run_dir)
    elif args.command == "bench":
        from alexnet.bench import run_benchmarks

        run_benchmarks(config, Path(args.logs))


def run_run_command(command: str, run_dir: Path, overrides: list[str], files: list[str]) -> None:
    """eval, export or predict of an existing run."""
    if command == "eval":
        from alexnet.evaluate import evaluate_run

        evaluate_run(run_dir, overrides)
    elif command == "export":
        from alexnet.export import export_run

        export_run(run_dir)
    elif command == "predict":
        from alexnet.export import predict_files

        if not files:
            raise ConfigError('predict needs image files: make predict IMAGES="a.jpg b.png"')
        predict_files(run_dir, files)


if __name__ == "__main__":
    sys.exit(main())
