"""`backprop-live train`: train a network on MNIST from the command line and report how it did.

The configuration flags are made from :class:`TrainConfig`'s fields, so a field added there
(``weight_decay`` becomes ``--weight-decay``) is a flag here without touching this file: its
type, default, help and limits are the field's (see :class:`engine.training.Limits`), and the
values are checked by the config itself, so a flag refuses exactly what ``POST /api/run`` does.

Output: a progress bar on stderr; on stdout either a short summary or, with ``--json``, exactly
one JSON object. With ``--record`` the run goes into the run library (``--state-dir``, the same
default as `serve`), where a server lists, compares, replays and resumes it. Exit codes: 0
success, 1 the data or the library is unusable or training diverged, 2 invalid arguments, 130
interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from engine.checkpoint import save_trainer
from engine.data.mnist import SAMPLE_NOTE, DataError, Dataset, load_dataset
from engine.training import (
    KINDS,
    LIMITS,
    ConfigError,
    Diverged,
    Evaluation,
    TrainConfig,
    Trainer,
)
from server.cli.recording import Recording
from server.config import COST_WINDOW, default_state_dir
from server.store import StoreError

PROG = "backprop-live train"


class Trained(Protocol):
    """What the progress bar reads of a trained mini-batch (the engine's or a recorded one)."""

    @property
    def cost(self) -> float: ...

    @property
    def evaluation(self) -> Evaluation | None: ...


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `train` flags to ``parser``: one per config field, then the run's own."""
    config = parser.add_argument_group("network and training (defaults: 3Blue1Brown's network)")
    for config_field in dataclasses.fields(TrainConfig):
        add_config_flag(config, config_field)
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory with the four MNIST files (default: $BACKPROP_LIVE_DATA, "
        "then the user cache, then the built-in sample)",
    )
    parser.add_argument(
        "--save", metavar="PATH.npz", type=Path, help="write a checkpoint here at the end"
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with the results on stdout"
    )
    library = parser.add_argument_group("keeping the run (the run library that serve shows)")
    library.add_argument(
        "--record",
        action="store_true",
        help="keep the run in the run library: every mini-batch's cost, each epoch's test "
        "result and weights; `backprop-live runs` and the server's /runs page list it",
    )
    library.add_argument("--name", help="the run's name in the library (default: its config)")
    library.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help=f"the run library's directory (default: {default_state_dir()}, as for serve)",
    )


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_config_flag(group: Any, config_field: dataclasses.Field) -> None:
    """One flag for one config field; its default stays the dataclass's (None = not given)."""
    kind, limits = KINDS[config_field.name], LIMITS[config_field.name]
    options: dict[str, Any] = {"default": None, "dest": config_field.name}
    if limits.choices:
        options["choices"] = limits.choices  # argparse lists them; the help need not
        allowed = ""
    else:
        options["type"] = value_parser(kind)
        options["metavar"] = metavar(kind)
        allowed = f": {limits.describe(kind)}"
    help_text = f"{limits.help}{allowed} (default: {show(config_field.default)})"
    group.add_argument(flag_name(config_field.name), help=help_text, **options)


def value_parser(kind: Any) -> Callable[[str], Any]:
    """A string-to-value function for argparse; ``tuple[int, ...]`` reads ``16,16``."""
    if typing.get_origin(kind) is not tuple:
        return kind
    item_type = typing.get_args(kind)[0]

    def parse_items(text: str) -> tuple:
        return tuple(item_type(item) for item in text.split(",") if item.strip())

    parse_items.__name__ = f"comma-separated {item_type.__name__} list"
    return parse_items


def metavar(kind: Any) -> str:
    return "N,N" if typing.get_origin(kind) is tuple else {int: "N", float: "FLOAT"}[kind]


def show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config the flags ask for: the dataclass defaults, overridden by the flags given."""
    given = {
        config_field.name: getattr(args, config_field.name)
        for config_field in dataclasses.fields(TrainConfig)
        if getattr(args, config_field.name, None) is not None
    }
    return TrainConfig(**given)


def run_train(args: argparse.Namespace) -> int:
    """Run `backprop-live train` with parsed ``args``; return the exit code."""
    try:
        config = config_from_args(args)
    except ConfigError as error:
        message = str(error).removeprefix(f"{error.field}: ")
        return fail(f"argument {flag_name(error.field)}: {message}", 2)
    if args.save is not None and not args.save.parent.is_dir():
        return fail(f"argument --save: directory {args.save.parent} does not exist", 2)
    if args.save is not None and args.save.is_dir():
        return fail(f"argument --save: {args.save} is a directory, expected a file name", 2)
    for flag in ("name", "state_dir"):
        if getattr(args, flag) is not None and not args.record:
            return fail(f"argument {flag_name(flag)}: only with --record", 2)
    try:
        dataset = load_dataset(args.data_dir)
    except DataError as error:
        return fail(str(error), 1)
    if dataset.name == "sample":
        print(SAMPLE_NOTE, file=sys.stderr)

    trainer = Trainer(config, dataset)
    try:
        recording = start_recording(args, trainer)
    except StoreError as error:
        return fail(f"cannot record the run: {error}", 1)
    try:
        return finish(args, trainer, recording)
    finally:
        if recording is not None:
            recording.close()


def start_recording(args: argparse.Namespace, trainer: Trainer) -> Recording | None:
    if not args.record:
        return None
    return Recording(args.state_dir or default_state_dir(), trainer, args.name)


def finish(args: argparse.Namespace, trainer: Trainer, recording: Recording | None) -> int:
    """Train to the end and report; the exit code."""
    started = time.perf_counter()
    recorded = {"run": recording.run.id} if recording else {}
    try:
        # Overflow is how a diverging run shows itself; it is reported below as that, once,
        # rather than as a page of NumPy warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            train(trainer, recording.step if recording else trainer.step)
    except Diverged as error:
        if args.json:
            result = results(trainer, time.perf_counter() - started, "diverged")
            print(json.dumps(result | recorded | {"error": str(error)}))
        return fail(f"training diverged: {error}", 1)
    except KeyboardInterrupt:
        return fail(f"interrupted after {trainer.progress.batch_index} mini-batches", 130)
    result = results(trainer, time.perf_counter() - started, "finished") | recorded
    if recording is not None:
        result["library"] = str(recording.path)
    save_error = None
    if args.save is not None:
        try:
            result["checkpoint"] = str(save(trainer, args.save))
        except OSError as error:
            save_error = f"could not write the checkpoint {args.save}: {error}"
    print(json.dumps(result) if args.json else summary(result))
    return fail(save_error, 1) if save_error else 0


def fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def train(trainer: Trainer, step: Callable[[], Trained]) -> None:
    """Every remaining epoch of ``trainer``, one ``step`` (a mini-batch) at a time, with one
    progress bar per epoch on stderr."""
    costs: deque[float] = deque(maxlen=COST_WINDOW)
    epochs = trainer.config.epochs
    # Redraw often on a terminal; rarely when stderr is a log file, so it is not flooded.
    interval = 0.1 if sys.stderr.isatty() else 10.0
    while not trainer.finished:
        epoch = trainer.progress.epoch
        with tqdm(
            total=trainer.batches_per_epoch,
            initial=trainer.progress.batch_in_epoch,
            desc=f"epoch {epoch + 1}/{epochs}",
            unit="batch",
            file=sys.stderr,
            mininterval=interval,
            dynamic_ncols=True,
        ) as bar:
            while trainer.progress.epoch == epoch:
                report = step()
                costs.append(report.cost)
                bar.update()
                if bar.n % 25 == 0 or report.evaluation is not None:
                    bar.set_postfix_str(postfix(costs, trainer.progress.evaluations), refresh=False)


def postfix(costs: deque[float], evaluations: list[Evaluation]) -> str:
    text = f"cost {sum(costs) / len(costs):.4f} (mean of last {len(costs)})"
    if evaluations:
        text += f", test accuracy {evaluations[-1].accuracy:.2%}"
    return text


def results(trainer: Trainer, seconds: float, status: str) -> dict[str, Any]:
    """What the run achieved, as the JSON object `--json` prints.

    ``seconds`` is the training loop's time, its test evaluations included and the loading
    of the data not, so ``examples_per_second`` is what the engine sustains.
    """
    dataset: Dataset = trainer.dataset
    evaluations = trainer.progress.evaluations
    last = evaluations[-1] if evaluations else None
    examples = trainer.progress.examples_seen
    return {
        "status": status,
        "test_accuracy": last.accuracy if last else None,
        "test_cost": last.cost if last else None,
        "epochs": trainer.progress.epoch,
        "seconds": seconds,
        "examples_seen": examples,
        "examples_per_second": round(examples / seconds) if seconds > 0 else None,
        "dataset": dataset.name,
        "data_source": dataset.source,
        "train_size": dataset.train_size,
        "test_size": dataset.test_size,
        "config": trainer.config.to_dict(),
        "accuracies": [evaluation.accuracy for evaluation in evaluations],
        "evaluations": [dataclasses.asdict(evaluation) for evaluation in evaluations],
    }


def save(trainer: Trainer, path: Path) -> Path:
    return save_trainer(path, trainer, {"data_source": trainer.dataset.source})


def summary(result: dict[str, Any]) -> str:
    """A few lines for people: what was trained on what, and how well it does."""
    config = result["config"]
    sizes = "-".join(map(str, TrainConfig.from_dict(config).layer_sizes))
    lines = [
        f"network {sizes} {config['activation']}, {config['loss']}, {config['optimizer']} "
        f"lr {config['lr']:g}, batch {config['batch_size']}; data: {result['dataset']} "
        f"({result['train_size']:,} train / {result['test_size']:,} test)"
    ]
    if result["test_accuracy"] is not None:
        correct = round(result["test_accuracy"] * result["test_size"])
        lines.append(
            f"test accuracy {result['test_accuracy']:.2%} ({correct:,} of "
            f"{result['test_size']:,}), test cost {result['test_cost']:.4f}, "
            f"after {result['epochs']} epochs"
        )
    speed = result["examples_per_second"]
    lines.append(f"{result['seconds']:.2f} s" + (f", {speed:,} examples/s" if speed else ""))
    if "checkpoint" in result:
        lines.append(f"checkpoint saved to {result['checkpoint']}")
    if "run" in result:
        lines.append(f"recorded as run {result['run']} in {result['library']}")
    return "\n".join(lines)
