"""Command line: `python -m alexnet COMMAND --config FILE --run NAME [section.key=value ...]`.

Only parses arguments and calls the function that does the work; the Makefile is the user's interface.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alexnet.config import ConfigError, load_config

COMMANDS = ("train", "summary", "data", "prepare", "eval", "predict", "export", "bench")


def main(argv=None) -> int:
    """Runs one command; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m alexnet", description=__doc__)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--config", default="configs/demo.yaml", help="YAML file under configs/")
    parser.add_argument("--run", default=None, help="run name: output goes to logs/RUN/")
    parser.add_argument("--logs", default="logs", help="parent directory of run directories")
    parser.add_argument("rest", nargs="*", help="section.key=value overrides (predict: also image files)")
    args = parser.parse_intermixed_args(argv)
    overrides = [a for a in args.rest if "=" in a]
    files = [a for a in args.rest if "=" not in a]
    if files and args.command != "predict":
        parser.error(f"not an override of the form section.key=value: {' '.join(files)}")
    try:
        config = load_config(args.config, overrides)
    except ConfigError as e:
        print(f"error in configuration: {e}", file=sys.stderr)
        return 2
    run_dir = Path(args.logs) / (args.run or Path(args.config).stem)

    if args.command == "summary":
        from alexnet.model import build_from_config

        build_from_config(config.model, num_classes=config.model.num_classes or 1000).summary(line_length=100)
    elif args.command == "data":
        from alexnet.demo_data import ensure_demo_data

        ensure_demo_data(config.data)
    elif args.command == "prepare":
        from alexnet.prepare import prepare

        prepare(config)
    elif args.command == "train":
        from alexnet.train import train_and_evaluate

        train_and_evaluate(config, run_dir)
    elif args.command == "eval":
        from alexnet.train import evaluate_run

        evaluate_run(config, run_dir)
    elif args.command == "export":
        from alexnet.export import export_run

        export_run(run_dir)
    elif args.command == "predict":
        from alexnet.export import predict_files

        if not files:
            parser.error('predict needs image files: make predict IMAGES="a.jpg b.png"')
        predict_files(run_dir, files)
    elif args.command == "bench":
        from alexnet.bench import run_benchmarks

        run_benchmarks(config, Path(args.logs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
