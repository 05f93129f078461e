"""The `backprop-live` command: one subcommand per entry of :data:`COMMANDS`.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> exit code``. Only the chosen subcommand's module is imported, so `train`
starts without loading the web server's libraries; adding a subcommand is one more entry.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

PROG = "backprop-live"


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, a one-line summary, and where its two functions live."""

    name: str
    summary: str
    module: str
    add_arguments: str
    run: str

    def load(self) -> tuple:
        module = importlib.import_module(self.module)
        return getattr(module, self.add_arguments), getattr(module, self.run)


COMMANDS = (
    Command(
        "serve",
        "serve the live visualiser: one run, trained in the open, in every browser in the room",
        "server.serve",
        "add_serve_arguments",
        "run_serve",
    ),
    Command(
        "train",
        "train a network on MNIST in this terminal and report its test accuracy",
        "engine.cli_train",
        "add_train_arguments",
        "run_train",
    ),
    Command(
        "data",
        "show which MNIST data would be used and why; --download fetches the full set",
        "engine.cli_data",
        "add_data_arguments",
        "run_data",
    ),
)


def build_parser(chosen: str | None = None) -> tuple[argparse.ArgumentParser, dict]:
    """The parser, with the flags of the ``chosen`` subcommand only (the others are listed
    with their summaries, and get their flags when they are the one chosen)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Watch a NumPy neural network learn MNIST by backpropagation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runners = {}
    for command in COMMANDS:
        subparser = subcommands.add_parser(
            command.name, help=command.summary, description=command.summary
        )
        if command.name == chosen:
            add_arguments, runners[command.name] = command.load()
            add_arguments(subparser)
    return parser, runners


def package_version() -> str:
    try:
        return version("backprop-live")
    except PackageNotFoundError:
        return "(not installed)"


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``: the first word, as the top level has only flags."""
    names = {command.name for command in COMMANDS}
    return argv[0] if argv and argv[0] in names else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run `backprop-live` with ``argv`` (default: the process's arguments); return the
    exit code (2 for invalid arguments, as argparse does)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, runners = build_parser(chosen_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 2
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
