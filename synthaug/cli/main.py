"""`synthaug` command line: one sub-command per module in synthaug.cli, imported only when used."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from synthaug import __version__
from synthaug.cli.errors import USER_ERRORS
from synthaug.training import distributed

# sub-command -> module in synthaug.cli that defines add_arguments(parser) and run(args) -> int
COMMANDS = {
    "train": ("train", "train a classifier on a real dataset (the baseline)"),
    "datasets": ("datasets", "list the dataset registry and what is available here"),
    "models": ("models", "list the classifier registry"),
    "generator": ("generator", "train and sample class-conditional generators"),
    "synth": ("synth", "make curated synthetic datasets and evaluate them"),
    "run": ("run", "run an experiment config: baseline vs augmented over seeds, statistics, report"),
    "serve": ("serve", "web page and JSON API: generate a class, classify an upload, open reports"),
}


class Parser(argparse.ArgumentParser):
    """argparse with errors as the rest of the CLI gives them: one line, naming the bad value, and where help is."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="synthaug", description="Generative data augmentation for image classification.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"synthaug.cli.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2): a code to return, not a process to end
        return int(exc.code or 0)
    if args.version:
        print(__version__)
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    code = 1  # what the finally below sees when the command raised
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: join the process group first
            _setup_distributed(args)
        code = int(args._run(args) or 0)
        return code
    except KeyboardInterrupt:
        print("interrupted; re-run with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as exc:  # known, user-facing failures print one clear line

        if isinstance(exc, USER_ERRORS):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    finally:  # under torchrun: every rank waits here until all are done (rank 0's writes included), unless one failed
        if "synthaug.training.distributed" in sys.modules:
            sys.modules["synthaug.training.distributed"].shutdown(succeeded=code == 0)


def _setup_distributed(args: argparse.Namespace) -> None:
    """Under torchrun: refuse commands that do not train data-parallel, then join the process group (before
    any model is built, so each process builds on the GPU of its local rank)."""
    command = args.command + (f" {args.generator_command}" if args.command == "generator" else "")
    distributed.check_command(command)
    distributed.setup()


if __name__ == "__main__":
    sys.exit(main())
