"""The `backprop-live` command: one subcommand per entry of :data:`COMMANDS`.

Each subcommand lives in its own module beside this one (``serve``, ``train``, ``data``,
``runs``), which provides a function that adds its flags and one that runs it. A command's
loader imports its module only when that command is chosen, so `train` starts without loading
the web server's libraries; adding a subcommand is one more entry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

PROG = "backprop-live"

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def load_serve() -> tuple[AddArguments, Run]:
    from server.cli import serve

    return serve.add_serve_arguments, serve.run_serve


def load_train() -> tuple[AddArguments, Run]:
    from server.cli import train

    return train.add_train_arguments, train.run_train


def load_trainer() -> tuple[AddArguments, Run]:
    from server.cli import trainer

    return trainer.add_trainer_arguments, trainer.run_trainer


def load_data() -> tuple[AddArguments, Run]:
    from server.cli import data

    return data.add_data_arguments, data.run_data


def load_runs() -> tuple[AddArguments, Run]:
    from server.cli import runs

    return runs.add_runs_arguments, runs.run_runs


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, a one-line summary, and the loader of its two functions."""

    name: str
    summary: str
    load: Callable[[], tuple[AddArguments, Run]]


COMMANDS = (
    Command(
        "serve",
        "serve the live visualiser: one run, trained in the open, in every browser in the room",
        load_serve,
    ),
    Command(
        "train",
        "train a network on MNIST in this terminal and report its test accuracy",
        load_train,
    ),
    Command(
        "trainer",
        "train the one run that `serve --redis` web processes fan out, through Redis",
        load_trainer,
    ),
    Command(
        "data",
        "show which MNIST data would be used and why; --download fetches the full set",
        load_data,
    ),
    Command(
        "runs",
        "the run library: list the kept runs, show, export or delete one",
        load_runs,
    ),
)


def build_parser(chosen: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Run]]:
    """The parser, with the flags of the ``chosen`` subcommand only (the others are listed
    with their summaries, and get their flags when they are the one chosen)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Watch a NumPy neural network learn MNIST by backpropagation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runners: dict[str, Run] = {}
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
