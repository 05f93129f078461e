"""How well the network reads the room's drawings and the MNIST test set: the reading of every
drawing, the share read right, and the confusion matrices (rows: the true digit, columns: the
network's reading), computed with one forward pass over all of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.mnist import CLASSES, Dataset, to_unit_floats
from engine.network import Network
from server.gallery import Drawing, pixel_rows

TEST_CHUNK = 2_000  # test digits per forward pass: bounds the activations of a wide network


def probabilities(network: Network, output: np.ndarray) -> np.ndarray:
    """The output layer as probabilities: softmax outputs are already; the mse cost's sigmoid
    outputs are scaled to sum to 1 per row."""
    if network.loss == "mse":
        return output / output.sum(axis=-1, keepdims=True)
    return output


def confusion(labels: np.ndarray, readings: np.ndarray) -> np.ndarray:
    """[10, 10] counts: row = the true digit, column = the network's reading."""
    pairs = np.asarray(labels, np.int64) * CLASSES + np.asarray(readings, np.int64)
    return np.bincount(pairs, minlength=CLASSES * CLASSES).reshape(CLASSES, CLASSES)


@dataclass(frozen=True)
class Score:
    """How many of some drawings there are and how many the network reads right."""

    count: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class RoomScores:
    """The network's reading of ``drawings`` (hidden ones are read but never scored)."""

    drawings: tuple[Drawing, ...]
    digits: np.ndarray  # the reading of each drawing
    probabilities: np.ndarray  # [n, 10]
    held_out: np.ndarray  # bool: in the held-out half

    @property
    def scored(self) -> np.ndarray:
        return np.array([not d.hidden for d in self.drawings], bool)

    @property
    def right(self) -> np.ndarray:
        return self.digits == np.array([d.label for d in self.drawings], np.int64)

    def score(self, among: np.ndarray | None = None) -> Score:
        """Of the visible drawings (``among`` them, if given)."""
        chosen = self.scored if among is None else self.scored & among
        return Score(int(chosen.sum()), int((self.right & chosen).sum()))

    @property
    def confusion(self) -> np.ndarray:
        scored = self.scored
        labels = np.array([d.label for d in self.drawings], np.int64)
        return confusion(labels[scored], self.digits[scored])


def read_room(network: Network, drawings: tuple[Drawing, ...], held_out: np.ndarray) -> RoomScores:
    """Read every drawing with ``network`` in one forward pass. ``held_out[i]``: drawing i is
    in the held-out half."""
    if not drawings:
        empty = np.zeros(0, np.int64)
        return RoomScores(drawings, empty, np.zeros((0, CLASSES)), np.zeros(0, bool))
    output = network.forward(to_unit_floats(pixel_rows(drawings))).output
    return RoomScores(
        drawings, output.argmax(axis=1), probabilities(network, output), np.asarray(held_out, bool)
    )


def confusion_on_test_set(network: Network, dataset: Dataset) -> np.ndarray:
    """The confusion matrix of the dataset's test digits, read by ``network``."""
    readings = np.empty(dataset.test_size, np.int64)
    for start in range(0, dataset.test_size, TEST_CHUNK):
        chunk = dataset.test_images[start : start + TEST_CHUNK]
        readings[start : start + len(chunk)] = network.forward(chunk).output.argmax(axis=1)
    return confusion(dataset.test_labels, readings)
