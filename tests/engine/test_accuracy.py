"""The documented accuracies on the full MNIST test set (slow: real training, minutes in all).

The recipes are read from ``benchmarks/accuracy.py`` and parsed by the `train` command's own
parser, so what is checked here is exactly what the README tells people to type. Only the
accuracy is asserted, never the time: the machine is shared.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from engine.data.mnist import load_dataset
from engine.training import Trainer

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy.py"


def load_recipes() -> dict:
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return {recipe.name: recipe for recipe in module.RECIPES}


RECIPES = load_recipes()


@pytest.fixture(scope="module")
def mnist(mnist_dir: Path):
    dataset = load_dataset(mnist_dir)
    assert (dataset.name, dataset.train_size, dataset.test_size) == ("mnist", 60_000, 10_000)
    return dataset


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "expected_flags"),
    [
        # 3Blue1Brown's network trained as in Nielsen's book: >= 94% after 10 epochs.
        ("3blue1brown", dict(hidden=(16, 16), activation="sigmoid", loss="mse", lr=3.0)),
        # One ReLU layer of 128 with Adam: >= 97.0% after 5 epochs.
        ("relu-adam", dict(hidden=(128,), activation="relu", optimizer="adam", epochs=5)),
        # The quick recipe: >= 98.0% (documented to take under 20 s on 2 cores).
        ("fast-98", dict(loss="cross-entropy", lr_schedule="cosine", augment_shift=1)),
    ],
)
def test_recipe_reaches_its_documented_accuracy(mnist, name: str, expected_flags: dict) -> None:
    recipe = RECIPES[name]
    config = recipe.config()
    for field, value in expected_flags.items():
        assert getattr(config, field) == value, field
    trainer = Trainer(config, mnist)
    while not trainer.finished:
        trainer.step()
    evaluations = trainer.progress.evaluations
    assert len(evaluations) == config.epochs
    assert evaluations[-1].accuracy >= recipe.target, [e.accuracy for e in evaluations]
