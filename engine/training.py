"""The training loop: shuffled mini-batches, one optimiser step each, a test at each epoch end.

A :class:`Trainer` is driven one mini-batch at a time (``step``), so the same loop serves the
command line (as fast as it can) and the server (paused, stepped, slowed down, its learning rate
changed between any two mini-batches).
"""

from __future__ import annotations

import functools
import itertools
import math
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from engine.data.mnist import CLASSES, IMAGE_SIDE, MNIST_TRAIN_SIZE, PIXELS, Dataset
from engine.network import ACTIVATIONS, LOSSES, Gradients, Network, Workspace
from engine.optimizers import OPTIMIZERS, make_optimizer

LR_SCHEDULES = ("constant", "cosine")
# Below this many multiply-adds in the largest matrix product of a step, waking a second BLAS
# thread costs more than it saves, and a core busy with something else stalls it outright.
SINGLE_THREAD_WORK = 2**24


class ConfigError(ValueError):
    """A run configuration value that its :class:`Limits` refuse; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Diverged(RuntimeError):
    """The cost became NaN or infinite; the step that caused it was not applied."""


@dataclass(frozen=True)
class Limits:
    """The values one setting accepts, written once, next to its field of :class:`TrainConfig`:
    the config checks them, and the server's request body and the `train` flags are made from
    them.

    A number lies from ``low`` to ``high`` (``low`` itself excluded if ``above_low``); a tuple
    holds ``length`` (fewest, most) such whole numbers; a name is one of ``choices``.
    ``help`` says what the setting means, for ``--help`` and the OpenAPI schema.
    """

    help: str
    low: float | None = None
    high: float | None = None
    above_low: bool = False
    length: tuple[int, int] | None = None
    choices: tuple[str, ...] = ()

    def admits(self, value: Any, kind: Any) -> bool:
        """Whether ``value`` is of type ``kind`` and within the limits.

        Configs arrive from JSON and checkpoints, where 16.5 units or ``true`` as a batch size
        would pass a range check and break the run later, so the type is checked too.
        """
        if kind is str:
            return isinstance(value, str) and value in self.choices
        if kind is int:
            return _is_int(value) and self.within(value)
        if kind is float:
            return (_is_int(value) or isinstance(value, float)) and self.within(value)
        if typing.get_origin(kind) is tuple:
            fewest, most = self.length or (0, math.inf)
            return fewest <= len(value) <= most and all(self.admits(item, int) for item in value)
        raise TypeError(f"no limits for values of type {kind}")

    def within(self, number: float) -> bool:
        """Whether ``number`` is finite and in the range (numbers always have both ends)."""
        assert self.low is not None and self.high is not None
        if isinstance(number, float) and not math.isfinite(number):
            return False
        above_low = number > self.low if self.above_low else number >= self.low
        return above_low and number <= self.high

    def describe(self, kind: Any) -> str:
        """The values admitted, in words: "a number above 0 and at most 100"."""
        if kind is str:
            return "one of " + ", ".join(self.choices)
        if kind is int:
            return f"a whole number {self.bounds()}"
        if kind is float:
            return f"a number {self.bounds()}"
        count = f"{self.length[0]} to {self.length[1]} " if self.length else ""
        return f"{count}whole numbers, each {self.bounds()}"

    def bounds(self) -> str:
        """The range in words: "from 1 to 512", or "above 0 and at most 100"."""
        low, high = _plain(self.low), _plain(self.high)
        return f"above {low} and at most {high}" if self.above_low else f"from {low} to {high}"


def _plain(number: float | None) -> str:
    """``4294967295`` rather than ``4.29497e+09``, and ``0.1`` as it is."""
    return str(int(number)) if number is not None and number == int(number) else str(number)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def setting(default: Any, help: str, **limits: Any) -> Any:
    """A :class:`TrainConfig` field: its default, and the :class:`Limits` of its values."""
    return field(default=default, metadata={"limits": Limits(help, **limits)})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run, each field with the values it admits. Defaults:
    3Blue1Brown's network, trained as Nielsen does."""

    hidden: tuple[int, ...] = setting(
        (16, 16), "units in each hidden layer", low=1, high=512, length=(1, 4)
    )
    activation: str = setting(
        "sigmoid", "activation function of the hidden layers", choices=ACTIVATIONS
    )
    loss: str = setting(
        "mse",
        "cost: mse (quadratic cost on sigmoid outputs) or cross-entropy (softmax outputs)",
        choices=LOSSES,
    )
    optimizer: str = setting(
        "sgd",
        "how a gradient becomes a step: plain SGD, SGD with momentum, or Adam",
        choices=OPTIMIZERS,
    )
    lr: float = setting(3.0, "learning rate η", low=0, above_low=True, high=100)
    batch_size: int = setting(
        100,
        "examples per mini-batch (more than the training set holds: all of it, one step an epoch)",
        low=1,
        high=MNIST_TRAIN_SIZE,
    )
    epochs: int = setting(10, "passes over the training set", low=1, high=1000)
    seed: int = setting(
        0, "random seed for the initial weights and the shuffling", low=0, high=2**32 - 1
    )
    weight_decay: float = setting(
        0.0, "L2 weight decay λ added to every weight's gradient (0 = off)", low=0, high=1
    )
    lr_schedule: str = setting(
        "constant",
        "constant, or cosine: anneal the learning rate to 0 over the run's mini-batches",
        choices=LR_SCHEDULES,
    )
    augment_shift: int = setting(
        0, "move each training digit by up to this many pixels each way (0 = off)", low=0, high=4
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first field whose value its limits refuse."""
        for spec in fields(self):
            check(spec.name, getattr(self, spec.name))

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (PIXELS, *self.hidden, CLASSES)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["hidden"] = list(self.hidden)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# Each field's type (int, float, str or tuple[int, ...]) and limits, by name.
KINDS: dict[str, Any] = typing.get_type_hints(TrainConfig)
LIMITS: dict[str, Limits] = {spec.name: spec.metadata["limits"] for spec in fields(TrainConfig)}


def check(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` is admitted for the config field ``name``."""
    if not LIMITS[name].admits(value, KINDS[name]):
        raise ConfigError(name, f"must be {LIMITS[name].describe(KINDS[name])}")


@dataclass(frozen=True)
class LayerGradientStats:
    """How large one layer's gradient is: what the "gradients" chart plots per layer."""

    weight_norm: float  # ‖dC/dW‖₂
    bias_norm: float  # ‖dC/db‖₂
    mean_abs: float  # mean |dC/dw| over the layer's weights


@dataclass(frozen=True)
class Evaluation:
    """The network's score on the test set after ``examples_seen`` training examples."""

    epoch: int
    accuracy: float
    cost: float
    examples_seen: int


@dataclass(frozen=True)
class BatchReport:
    """What one mini-batch did."""

    index: int  # which mini-batch: numbered from 0 across epochs
    epoch: int  # which epoch it belongs to, from 0
    cost: float
    gradient_stats: list[LayerGradientStats]
    examples_seen: int
    evaluation: Evaluation | None = None  # set on the last mini-batch of an epoch


@dataclass
class Progress:
    """Where a run is: counters that a checkpoint saves and restores.

    The batch counters are indices, from 0, of the next mini-batch to train: after three
    mini-batches, ``batch_index`` is 3, the fourth's index. So they also count the mini-batches
    trained, as ``epoch`` counts the epochs completed.
    """

    epoch: int = 0  # the epoch being trained
    batch_in_epoch: int = 0  # the next mini-batch's index within its epoch
    batch_index: int = 0  # the next mini-batch's index across epochs
    examples_seen: int = 0
    evaluations: list[Evaluation] = field(default_factory=list)


def gradient_stats(
    gradients: Gradients, scratch: Sequence[np.ndarray] | None = None
) -> list[LayerGradientStats]:
    """Per-layer L2 norms and mean magnitude of a mini-batch's gradient.

    ``scratch`` (arrays shaped like the weight gradients) saves allocating |dC/dW| each time.
    The sum of |dC/dW| is a product with a vector of ones, as for the bias gradient: BLAS
    reads the matrix once, NumPy's pairwise sum is several times slower.
    """
    stats = []
    for layer, (w, b) in enumerate(zip(gradients.weights, gradients.biases)):
        magnitudes = np.abs(w, out=None if scratch is None else scratch[layer])
        stats.append(
            LayerGradientStats(
                weight_norm=math.sqrt(float(np.vdot(w, w))),
                bias_norm=math.sqrt(float(np.vdot(b, b))),
                mean_abs=float(np.matmul(magnitudes, ones(w.shape[1], w.dtype)).sum()) / w.size,
            )
        )
    return stats


@functools.cache
def ones(length: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``length`` ones, made once per length and dtype."""
    vector = np.ones(length, dtype)
    vector.flags.writeable = False
    return vector


def parameter_groups(vector: np.ndarray, network: Network) -> list[np.ndarray]:
    """``vector``, laid out like ``network.parameters()``, cut into its weights and its biases."""
    weights = sum(w.size for w in network.weights)
    return [vector[:weights], vector[weights:]]


def blas_threads(layer_sizes: Sequence[int], batch_size: int) -> int | None:
    """How many BLAS threads a training step should use: one for small networks, else all."""
    largest_product = max(n_in * n_out for n_in, n_out in itertools.pairwise(layer_sizes))
    return 1 if batch_size * largest_product < SINGLE_THREAD_WORK else None


@functools.cache
def blas_libraries() -> tuple[tuple[Any, int], ...]:
    """The BLAS libraries NumPy loaded, each with its thread count when first asked ("all").

    threadpoolctl finds them once: its ``limit()`` searches again on every call, which cost
    a tenth of a small network's step.
    """
    controller = ThreadpoolController().select(user_api="blas")
    return tuple((library, library.num_threads) for library in controller.lib_controllers)


def use_blas_threads(threads: int | None) -> None:
    """Let BLAS use ``threads`` threads (None: as many as it started with) from now on.

    One C call per library when the count is already right, which is every step but the
    first: the count is left set, not restored, since nothing else in a training process
    wants another one.
    """
    for library, initial in blas_libraries():
        wanted = initial if threads is None else min(threads, initial)
        if library.num_threads != wanted:
            library.set_num_threads(wanted)


def shift_images(
    images: np.ndarray, shifts: np.ndarray, max_shift: int, padded: np.ndarray
) -> None:
    """Move each 28×28 image (a row of ``images``) in place by its ``shifts`` row (dy, dx).

    The digit is copied into the middle of the zeroed ``padded`` canvas, and each image is
    cut back out at its own offset; one slice per distinct offset keeps it vectorised.
    """
    side = IMAGE_SIDE
    squares = images.reshape(len(images), side, side)
    padded[:, max_shift : max_shift + side, max_shift : max_shift + side] = squares
    top_left = max_shift - shifts  # content moves down and right as the window moves up and left
    for dy in range(2 * max_shift + 1):
        for dx in range(2 * max_shift + 1):
            chosen = np.flatnonzero((top_left[:, 0] == dy) & (top_left[:, 1] == dx))
            if len(chosen):
                squares[chosen] = padded[chosen, dy : dy + side, dx : dx + side]


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class ExtraExamples:
    """Examples from outside the dataset, such as digits a room drew, trained on alongside it.

    Every mini-batch gets ``share`` of its size more examples (at least one), drawn from these
    without repeats, each moved by up to ``max_shift`` pixels each way: a few dozen digits seen
    in many positions are learnt as digits, not memorised as pictures. The dataset's own
    examples are untouched, so every epoch still sees each of them once.
    """

    images: np.ndarray  # [n, 784] in [0, 1], in the network's dtype
    labels: np.ndarray  # [n] digits
    share: float = 0.1
    max_shift: int = 2

    def __post_init__(self) -> None:
        if self.images.ndim != 2 or self.images.shape[1] != PIXELS:
            raise ValueError(f"extra examples must be rows of {PIXELS} pixels")
        if len(self.labels) != len(self.images) or len(self.labels) == 0:
            raise ValueError("extra examples need one label per image, and at least one image")

    def mixed_into(
        self, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``images`` and ``labels`` with this mini-batch's extra examples appended."""
        count = min(len(self.labels), max(1, round(self.share * len(images))))
        chosen = rng.choice(len(self.labels), size=count, replace=False)
        extra = self.images[chosen]  # a copy, shifted in place
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=(count, 2))
        side = IMAGE_SIDE + 2 * self.max_shift
        shift_images(extra, shifts, self.max_shift, np.zeros((count, side, side), extra.dtype))
        return np.concatenate([images, extra]), np.concatenate([labels, self.labels[chosen]])


class Trainer:
    """Trains ``network`` on ``dataset`` with ``config``, one mini-batch per :meth:`step`."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset,
        network: Network | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.network = network or Network(
            config.layer_sizes, config.activation, config.loss, seed=config.seed
        )
        self.optimizer = make_optimizer(config.optimizer, config.lr, config.weight_decay)
        self.progress = progress or Progress()
        self.last_gradients: Gradients | None = None
        self.extra_examples: ExtraExamples | None = None  # mixed into every mini-batch
        self._batch_buffers: dict[int, np.ndarray] = {}
        self._shift_canvases: dict[int, np.ndarray] = {}
        self._magnitudes = [np.empty_like(w) for w in self.network.weights]
        self._byte_buffers: dict[int, np.ndarray] = {}
        self._threads = blas_threads(self.network.layer_sizes, config.batch_size)
        self._order = self._shuffled_order(self.progress.epoch)

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        check("lr", value)
        self.optimizer.lr = value

    @property
    def finished(self) -> bool:
        return self.progress.epoch >= self.config.epochs

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.dataset.train_size / self.config.batch_size)

    def lr_scale(self) -> float:
        """The schedule's factor for the next mini-batch: 1, or a cosine from 1 down to 0."""
        if self.config.lr_schedule == "constant":
            return 1.0
        total = self.config.epochs * self.batches_per_epoch
        return 0.5 * (1 + math.cos(math.pi * min(self.progress.batch_index / total, 1.0)))

    def _shuffled_order(self, epoch: int) -> np.ndarray:
        """A fresh permutation of the training set for ``epoch``, reproducible from the seed."""
        rng = np.random.default_rng([self.config.seed, epoch])
        return rng.permutation(self.dataset.train_size)

    def _next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        start = self.progress.batch_in_epoch * self.config.batch_size
        indices = self._order[start : start + self.config.batch_size]
        buffer = self._batch_buffers.get(len(indices))
        if buffer is None:
            buffer = np.empty((len(indices), PIXELS), self.network.dtype)
            self._batch_buffers[len(indices)] = buffer
        pixels = self.dataset.train_bytes
        if pixels is None:
            np.take(self.dataset.train_images, indices, axis=0, out=buffer)
        else:
            # The shuffled rows are scattered over the whole training set, so gathering them
            # waits on memory: as bytes that is a quarter of the reads, and byte / 255 gives
            # exactly the floats of train_images.
            gathered = self._byte_buffers.get(len(indices))
            if gathered is None:
                gathered = np.empty((len(indices), PIXELS), np.uint8)
                self._byte_buffers[len(indices)] = gathered
            np.take(pixels, indices, axis=0, out=gathered)
            np.divide(gathered, np.float32(255), out=buffer)
        if self.config.augment_shift:
            self._augment(buffer)
        labels = self.dataset.train_labels[indices]
        if self.extra_examples is not None:
            # Drawn from the seed and the batch index, as the shifts are: reproducible.
            rng = np.random.default_rng([self.config.seed, self.progress.batch_index, 2])
            return self.extra_examples.mixed_into(buffer, labels, rng)
        return buffer, labels

    def _augment(self, images: np.ndarray) -> None:
        """Shift every image by a random offset, drawn from the seed and the batch index so a
        resumed run sees the same digits."""
        limit = self.config.augment_shift
        rng = np.random.default_rng([self.config.seed, self.progress.batch_index, 1])
        shifts = rng.integers(-limit, limit + 1, size=(len(images), 2))
        canvas = self._shift_canvases.get(len(images))
        if canvas is None:
            side = IMAGE_SIDE + 2 * limit
            canvas = np.zeros((len(images), side, side), images.dtype)
            self._shift_canvases[len(images)] = canvas
        shift_images(images, shifts, limit, canvas)

    def step(self) -> BatchReport:
        """Train on the next mini-batch. Raises :class:`Diverged` instead of applying a
        step whose cost is not finite, so the weights stay as they were (NumPy's overflow
        warnings on the way there are silenced: the exception says it better)."""
        if self.finished:
            raise RuntimeError("the run has finished all its epochs")
        use_blas_threads(self._threads)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._step()

    def _step(self) -> BatchReport:
        images, labels = self._next_batch()
        workspace = self.network.workspace(len(images))
        gradients = self.network.backward(images, labels, workspace)
        progress = self.progress
        if not math.isfinite(gradients.cost):
            raise Diverged(
                f"the cost became {gradients.cost} at mini-batch {progress.batch_index} "
                f"(epoch {progress.epoch + 1}); the learning rate {self.lr:g} is probably too "
                "high: reset the run with a smaller one"
            )
        self._apply(workspace)
        self.last_gradients = gradients
        report_stats = gradient_stats(gradients, self._magnitudes)
        index, epoch = progress.batch_index, progress.epoch
        progress.batch_index += 1
        progress.batch_in_epoch += 1
        progress.examples_seen += len(images)
        evaluation = None
        if progress.batch_in_epoch == self.batches_per_epoch:
            progress.epoch += 1
            progress.batch_in_epoch = 0
            evaluation = self.evaluate()
            progress.evaluations.append(evaluation)
            if not self.finished:
                self._order = self._shuffled_order(progress.epoch)
        return BatchReport(
            index, epoch, gradients.cost, report_stats, progress.examples_seen, evaluation
        )

    def _apply(self, workspace: Workspace) -> None:
        """One optimiser step on two vectors, all the weights and all the biases (views of the
        network's parameters and of the gradient): one NumPy call per operation of the update,
        not one per layer. Weight decay, if any, applies to the weights, not the biases."""
        self.optimizer.lr_scale = self.lr_scale()
        self.optimizer.step(
            parameter_groups(self.network.parameters(), self.network),
            parameter_groups(workspace.gradient, self.network),
            decayed=[True, False],
        )

    def restore_optimizer(self, steps: int, arrays: dict[str, list[np.ndarray]]) -> None:
        """Carry on after ``steps`` optimiser steps from what it remembered then, given as a
        checkpoint stores it: one array per weight and bias, in the network's order."""
        layers = self.network.num_layers
        joined = {
            name: [
                np.concatenate([np.ravel(array) for array in values[:layers]]),
                np.concatenate([np.ravel(array) for array in values[layers:]]),
            ]
            for name, values in arrays.items()
        }
        self.optimizer.restore(
            parameter_groups(self.network.parameters(), self.network), steps, joined
        )

    def evaluate(self, chunk_size: int = 2000) -> Evaluation:
        """Accuracy and mean cost on the test set, with the current weights."""
        images, labels = self.dataset.test_images, self.dataset.test_labels
        correct, total_cost = 0, 0.0
        for start in range(0, len(images), chunk_size):
            chunk, chunk_labels = (
                images[start : start + chunk_size],
                labels[start : start + chunk_size],
            )
            output = self.network.forward(chunk, self.network.workspace(len(chunk))).output
            correct += int(np.count_nonzero(output.argmax(axis=1) == chunk_labels))
            total_cost += self.network.output_cost(output, chunk_labels) * len(chunk)
        return Evaluation(
            epoch=self.progress.epoch,
            accuracy=correct / len(images),
            cost=total_cost / len(images),
            examples_seen=self.progress.examples_seen,
        )
