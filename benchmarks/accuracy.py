"""Test accuracy on the full MNIST for the documented recipes, and how long each takes.

Each recipe is a line of `backprop-live train` flags, parsed by the command's own parser, so
what is measured here is what anyone gets by typing them. For each one the script trains in
this process and prints the test accuracy after every epoch with the time since training
started, the time at which the recipe first reached its target, and the final accuracy. It then
runs the real command (``backprop-live train ... --json``) and prints its wall-clock time,
start-up and data loading included. Nothing here passes or fails: times depend on the machine
and on what else runs on it (``tests/engine/test_accuracy.py`` checks the accuracies).

    python benchmarks/accuracy.py [--data-dir DIR] [--only NAME] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.data.mnist import load_dataset
from engine.training import TrainConfig, Trainer
from server.cli.train import add_train_arguments, config_from_args


@dataclass(frozen=True)
class Recipe:
    name: str
    flags: str
    target: float  # test accuracy the recipe is documented to reach
    seconds: float | None = None  # the time it is documented to reach it in, if any

    def config(self) -> TrainConfig:
        parser = argparse.ArgumentParser(prog="backprop-live train")
        add_train_arguments(parser)
        return config_from_args(parser.parse_args(shlex.split(self.flags)))


RECIPES = (
    Recipe(
        "3blue1brown",
        "--hidden 16,16 --activation sigmoid --loss mse --optimizer sgd --lr 3.0 "
        "--batch-size 100 --epochs 10",
        target=0.94,
    ),
    Recipe(
        "relu-adam",
        "--hidden 128 --activation relu --loss cross-entropy --optimizer adam --lr 0.001 "
        "--batch-size 100 --epochs 5",
        target=0.97,
    ),
    Recipe(
        "fast-98",
        "--hidden 512 --activation relu --loss cross-entropy --optimizer adam --lr 0.001 "
        "--batch-size 128 --epochs 8 --lr-schedule cosine --augment-shift 1",
        target=0.98,
        seconds=20,
    ),
    Recipe(
        "best-98.5",
        "--hidden 512,512 --activation relu --loss cross-entropy --optimizer adam --lr 0.001 "
        "--batch-size 128 --epochs 10 --lr-schedule cosine --augment-shift 1",
        target=0.985,
        seconds=120,
    ),
)


def default_data_dir() -> Path | None:
    """The full MNIST kept beside the repository for benchmarks, if it is there."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


def run_in_process(recipe: Recipe, dataset) -> None:
    trainer = Trainer(recipe.config(), dataset)
    started, reached = time.perf_counter(), None
    while not trainer.finished:
        report = trainer.step()
        if report.evaluation is not None:
            seconds = time.perf_counter() - started
            accuracy = report.evaluation.accuracy
            print(f"    epoch {report.evaluation.epoch:>2}: {accuracy:.2%} at {seconds:6.1f} s")
            if reached is None and accuracy >= recipe.target:
                reached = (report.evaluation.epoch, seconds)
    total = time.perf_counter() - started
    final = trainer.progress.evaluations[-1].accuracy
    when = (
        f"reached {recipe.target:.1%} at epoch {reached[0]}, {reached[1]:.1f} s of training"
        if reached
        else f"did NOT reach {recipe.target:.1%}"
    )
    print(f"  in process: {when}; final {final:.2%} after {total:.1f} s of training")


def run_command(recipe: Recipe, data_dir: Path | None) -> None:
    """The real command a person types, timed from outside: start-up and loading included."""
    command = shutil.which("backprop-live")
    if command is None:
        print("  command: `backprop-live` is not installed; skipped")
        return
    arguments = [command, "train", *shlex.split(recipe.flags), "--json"]
    if data_dir is not None:
        arguments += ["--data-dir", str(data_dir)]
    started = time.perf_counter()
    finished = subprocess.run(arguments, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        print(f"  command: failed ({finished.returncode}): {finished.stderr.strip()[-300:]}")
        return
    result = json.loads(finished.stdout)
    print(
        f"  command: final {result['test_accuracy']:.2%} in {wall:.1f} s wall-clock "
        f"({result['seconds']:.1f} s training, {result['examples_per_second']:,} examples/s)"
        + (f"; documented: under {recipe.seconds:g} s" if recipe.seconds else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="full MNIST directory")
    parser.add_argument("--only", choices=[r.name for r in RECIPES], help="run one recipe")
    parser.add_argument("--skip-cli", action="store_true", help="do not run the real command")
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    started = time.perf_counter()
    dataset = load_dataset(data_dir)
    print(f"data: {dataset.source}, loaded in {time.perf_counter() - started:.1f} s")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (times depend on it)")
    if dataset.name != "mnist":
        sys.exit("these figures are for the full MNIST; pass --data-dir")
    for recipe in RECIPES:
        if args.only and recipe.name != args.only:
            continue
        print(f"{recipe.name}: backprop-live train {recipe.flags}")
        run_in_process(recipe, dataset)
        if not args.skip_cli:
            run_command(recipe, data_dir)
        print(f"  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
