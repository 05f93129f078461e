"""`backprop-live runs`: the run library from the terminal.

    backprop-live runs [--state-dir DIR]                  the runs, newest first
    backprop-live runs show ID                            one run: config, epochs, cost
    backprop-live runs export ID [--csv PATH]             as JSON on stdout, or as CSV
    backprop-live runs rm ID                              delete it and all it stored

An ID may be shortened to any prefix that names one run. The library is the one `serve` and
`train --record` write (``--state-dir``, default the user data directory); reading it while a
server trains is safe. Exit codes: 0 done, 1 no such run or an unusable library, 2 invalid
arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from server.config import default_state_dir
from server.library import csv_value, run_csv, run_detail
from server.store import DB_FILE, EvalRow, RunRow, Store, StoreError

PROG = "backprop-live runs"
NAME_WIDTH = 44
SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 32
SHOWN_MATCHES = 5  # ids listed when a prefix names several runs
# A server writes the row of a run it trains many times a second; a row that says "running"
# and was written this recently belongs to a server's live run, which only its page deletes.
LIVE_WITHIN_SECONDS = 60.0


class Refusal(Exception):
    """What the command cannot do, in one sentence (exit code 1)."""


def add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    state_dir = argparse.ArgumentParser(add_help=False)
    state_dir.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,  # given before the action or after it, either counts
        help=f"the run library's directory (default: {default_state_dir()})",
    )
    parser.add_argument("--state-dir", type=Path, metavar="DIR", default=None, help="as below")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", parents=[state_dir], help="the runs, newest first (the default)")
    show = actions.add_parser("show", parents=[state_dir], help="one run: config, epochs, cost")
    show.add_argument("id", help="the run's id, or a prefix of it that names one run")
    export = actions.add_parser(
        "export", parents=[state_dir], help="one run as JSON on stdout, or as CSV with --csv"
    )
    export.add_argument("id", help="the run's id, or a prefix of it that names one run")
    export.add_argument(
        "--csv",
        metavar="PATH",
        help="write CSV instead (one line per mini-batch, then per evaluation); - for stdout",
    )
    remove = actions.add_parser("rm", parents=[state_dir], help="delete a run and all it stored")
    remove.add_argument("id", help="the run's id, or a prefix of it that names one run")


def run_runs(args: argparse.Namespace) -> int:
    directory: Path = args.state_dir or default_state_dir()
    action = args.action or "list"
    try:
        if not (directory / DB_FILE).exists():
            return no_library(directory, action)
        with Store(directory) as store:
            ACTIONS[action](store, args)
    except (Refusal, StoreError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    return 0


def no_library(directory: Path, action: str) -> int:
    """Reading a library that is not there creates none."""
    message = f"no run library in {directory} yet: `serve` and `train --record` start one"
    if action == "list":
        print(message)
        return 0
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


# The actions


def list_runs(store: Store, args: argparse.Namespace) -> None:
    rows = store.runs()
    if not rows:
        print(f"no runs in {store.path}")
        return
    print(table(rows))
    print(f"\n{len(rows)} run{'s' if len(rows) > 1 else ''} in {store.path}")


def show_run(store: Store, args: argparse.Namespace) -> None:
    row = resolve(store, args.id)
    for label, value in details(store, row):
        print(f"{label + ':':<10}{value}")
    evaluations = store.evaluations(row.id)
    if evaluations:
        print()
        print(evaluation_table(evaluations))


def export_run(store: Store, args: argparse.Namespace) -> None:
    row = resolve(store, args.id)
    if args.csv is None:
        print(json.dumps(run_detail(store, row, points=None)))
    elif args.csv == "-":
        sys.stdout.write(run_csv(store, row.id))
    else:
        path = Path(args.csv)
        try:
            path.write_text(run_csv(store, row.id))
        except OSError as error:
            raise Refusal(f"cannot write {path}: {error.strerror or error}") from error
        print(f"wrote run {row.id} to {path}", file=sys.stderr)


def remove_run(store: Store, args: argparse.Namespace) -> None:
    row = resolve(store, args.id)
    quiet = time.time() - row.updated_at
    if row.status == "running" and quiet < LIVE_WITHIN_SECONDS:
        raise Refusal(
            f"run {row.id} was training {quiet:.0f} s ago: it is a server's live run; "
            "replace it there (or stop that server) before deleting it"
        )
    store.delete_run(row.id)
    if not store.flush():
        raise Refusal(f"could not delete run {row.id}; the messages above say why")
    print(f"deleted run {row.id} ({row.name})")


ACTIONS = {"list": list_runs, "show": show_run, "export": export_run, "rm": remove_run}


def resolve(store: Store, text: str) -> RunRow:
    """The run whose id is ``text``, or the only one that starts with it."""
    exact = store.run(text)
    if exact is not None:
        return exact
    matches = [row for row in store.runs() if row.id.startswith(text)]
    if not matches:
        raise Refusal(f"no run {text!r} in {store.path} (`{PROG}` lists them)")
    if len(matches) > 1:
        ids = ", ".join(row.id for row in matches[:SHOWN_MATCHES])
        more = "…" if len(matches) > SHOWN_MATCHES else ""
        count = len(matches)
        raise Refusal(f"{text!r} could be any of {count} runs ({ids}{more}): give more of it")
    return matches[0]


# Text for people


def table(rows: Sequence[RunRow]) -> str:
    header = ("ID", "NAME", "DATA", "STATUS", "EPOCHS", "ACCURACY", "TRAINED", "CREATED")
    lines = [header] + [table_line(row) for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    right = {4, 5, 6}  # numbers line up on their last digit
    return "\n".join(
        "  ".join(
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths))
        ).rstrip()
        for line in lines
    )


def table_line(row: RunRow) -> tuple[str, ...]:
    return (
        row.id,
        shortened(row.name, NAME_WIDTH),
        row.dataset,
        row.status,
        str(row.epochs_done),
        percent(row.test_accuracy),
        duration(row.seconds),
        local_time(row.created_at),
    )


def details(store: Store, row: RunRow) -> Iterator[tuple[str, str]]:
    yield "run", row.id
    yield "name", row.name
    yield "config", ", ".join(f"{key} {csv_value(value)}" for key, value in row.config.items())
    yield "data", row.dataset
    yield "status", row.status
    yield "created", local_time(row.created_at, seconds=True)
    yield "updated", local_time(row.updated_at, seconds=True)
    yield "trained", f"{row.examples_seen:,} examples in {duration(row.seconds)}"
    yield "accuracy", f"{percent(row.test_accuracy)} after {row.epochs_done} epochs"
    cost = store.costs(row.id).cost
    if len(cost):
        yield "cost", cost_line(cost)
    epochs = store.weight_epochs(row.id)
    stored = f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else ", ".join(map(str, epochs))
    yield "weights", f"stored for epochs {stored or 'none'} (the /runs page replays them)"


def cost_line(cost: np.ndarray) -> str:
    """A sparkline of the mean cost of each of up to SPARK_POINTS stretches of mini-batches."""
    stretches = [part for part in np.array_split(cost, min(SPARK_POINTS, len(cost))) if len(part)]
    finite = [part[np.isfinite(part)] for part in stretches]
    means = np.array([part.mean() if len(part) else np.nan for part in finite])
    low, high = np.nanmin(means), np.nanmax(means)
    span = (high - low) or 1.0
    marks = "".join(
        " " if np.isnan(mean) else SPARK[round((mean - low) / span * (len(SPARK) - 1))]
        for mean in means
    )
    return f"{marks}  {means[0]:.4g} → {means[-1]:.4g} over {len(cost):,} mini-batches"


def evaluation_table(evaluations: Sequence[EvalRow]) -> str:
    lines = [f"{'epoch':>5}  {'examples':>10}  {'seconds':>8}  {'accuracy':>8}  {'test cost':>9}"]
    for row in evaluations:
        cost = "–" if row.cost is None else f"{row.cost:.4f}"
        lines.append(
            f"{row.epoch:>5}  {row.examples_seen:>10,}  {row.seconds:>8.1f}  "
            f"{percent(row.accuracy):>8}  {cost:>9}"
        )
    return "\n".join(lines)


def shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def local_time(moment: float, seconds: bool = False) -> str:
    """Unix seconds in this machine's time zone, to the minute (or to the second)."""
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))
