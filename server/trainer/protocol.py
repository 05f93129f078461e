"""What the web process and the trainer process say to each other, over two pipes.

The web process sends :class:`Request` s, each holding one command (:data:`Command`); the
trainer runs them in order between two mini-batches and answers each with a :class:`Reply`.
Unasked, the trainer reports what training did: :class:`Trained` (the mini-batches since the
last report), :class:`Snapshot` (the network as it is now), :class:`RunChanged` (a new or
restored run), :class:`RaceChanged` (a race begun, reset or ended) and :class:`StatusChanged`.
Every report carries the run's :class:`RunState` (during a race: lane 0's) and the race's
:class:`RaceState` (None without one), so the web process always knows the run and the race as
of the last message it read. Batch records and snapshots carry their ``lane``. Everything here is
pickled; nothing imports the web framework, so the trainer process never loads it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.checkpoint import Checkpoint
from engine.network import Network
from engine.training import Evaluation, LayerGradientStats, TrainConfig

# Seconds the web side waits for a command's reply; the trainer drops a request older than
# this (through Redis, it may find one that waited while it was away).
COMMAND_TIMEOUT = 60.0


class Status(str, enum.Enum):
    """Where a run is. ``str`` so that it is its own JSON value."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    DIVERGED = "diverged"

    @property
    def ended(self) -> bool:
        return self in (Status.FINISHED, Status.DIVERGED)


class Conflict(Exception):
    """A command that the run's status does not allow now (answered with 409)."""


class Invalid(Exception):
    """A value the run cannot take; the message names it (answered with 422)."""


class TrainerUnavailable(Exception):
    """The trainer process did not answer in time, or is not running (answered with 503)."""


class NotFound(Exception):
    """A run, or an epoch of one, that the run library does not hold (answered with 404)."""


@dataclass(frozen=True)
class RunState:
    """The run as the trainer last reported it. ``batches_trained`` counts mini-batches (the
    index of the next one); ``cost_average`` is the mean of the latest ``COST_WINDOW``."""

    id: str
    status: Status
    message: str | None
    config: TrainConfig
    speed: float | None  # mini-batches per second; None: as fast as possible
    epoch: int
    batches_trained: int
    examples_seen: int
    batches_per_epoch: int
    seconds: float  # wall-clock seconds spent training
    last_cost: float | None
    cost_average: float | None
    test_accuracy: float | None
    test_cost: float | None


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One trained mini-batch: ``index`` counts from 0 across epochs; ``time`` is the Unix
    time it was trained, ``seconds`` the run's training time when it was done; ``evaluation``
    is set on the last mini-batch of an epoch."""

    run: str
    index: int
    epoch: int
    cost: float
    examples_seen: int
    gradients: Sequence[LayerGradientStats]
    time: float
    seconds: float
    evaluation: Evaluation | None
    lane: int | None = None  # which lane of the race; None outside a race


@dataclass(frozen=True)
class LaneConfig:
    """One lane of a race as the presenter asks for it."""

    label: str
    config: TrainConfig


@dataclass(frozen=True)
class LaneState:
    """One lane as the trainer last reported it: its run, and ``cost``, the mean cost of the
    mini-batches that hold its latest ``RACE_COST_EXAMPLES`` examples."""

    label: str
    state: RunState
    cost: float | None
    layer_sizes: tuple[int, ...]


@dataclass(frozen=True)
class RaceState:
    """The race as the trainer last reported it; ``rounds`` counts the rounds begun."""

    id: str
    pace: str
    status: Status
    speed: float | None  # rounds per second; None: as fast as possible
    rounds: int
    stepping: bool  # running to the end of the round under way, then paused (a step)
    lanes: list[LaneState]


# Commands: the web process's requests, one class each.


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Step:
    """Train exactly one mini-batch and stay paused."""


@dataclass(frozen=True)
class Reset:
    """A fresh network with the same config (and the current learning rate)."""


@dataclass(frozen=True)
class NewRun:
    config: TrainConfig


@dataclass(frozen=True)
class SetLearningRate:
    lr: float


@dataclass(frozen=True)
class SetSpeed:
    speed: float | None


@dataclass(frozen=True)
class LoadCheckpoint:
    """Replace the run with a saved one, paused where it was saved."""

    checkpoint: Checkpoint


@dataclass(frozen=True)
class ResumeRun:
    """Make the library's run ``run_id`` the live run, paused at the end of epoch ``epoch``
    (None: the last epoch it finished); what it trained after that point is forgotten."""

    run_id: str
    epoch: int | None


@dataclass(frozen=True)
class SaveCheckpoint:
    """Answered with the run as ``.npz`` bytes, optimiser state included."""


@dataclass(frozen=True)
class Teach:
    """One plain gradient step on one example; answered with the engine's ``Lesson``."""

    pixels: np.ndarray
    label: int
    lr: float


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class LearnFromRoom:
    """Mix the room's drawings into every mini-batch from now on, this run and the next ones
    (``on``), or stop. ``pixels``: uint8 [n, 784] as the gallery keeps them; ``labels``: the
    digits their authors meant."""

    on: bool
    pixels: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class NewRace:
    """Replace the live run (or race) with a race of ``lanes``, paused; the run that was live
    before the first race is kept to come back when the race ends."""

    lanes: tuple[LaneConfig, ...]
    pace: str


@dataclass(frozen=True)
class EndRace:
    """End the race (its lanes stay in the library) and bring back the run live before it,
    paused."""


@dataclass(frozen=True)
class Shutdown:
    """Save the run and leave."""


Command = (
    Start
    | Pause
    | Step
    | Reset
    | NewRun
    | SetLearningRate
    | SetSpeed
    | LoadCheckpoint
    | ResumeRun
    | SaveCheckpoint
    | Teach
    | LearnFromRoom
    | NewRace
    | EndRace
    | Shutdown
)


@dataclass(frozen=True)
class Request:
    id: int
    command: Command


# Reports: the trainer process's messages.


@dataclass(frozen=True)
class Reply:
    """The answer to request ``id``: ``value``, or the ``error`` it raised."""

    id: int
    state: RunState
    value: Any = None
    error: Exception | None = None
    race: RaceState | None = None


@dataclass(frozen=True)
class Trained:
    records: list[BatchRecord]
    state: RunState
    race: RaceState | None = None


@dataclass(frozen=True)
class Snapshot:
    """The network after ``batch`` mini-batches, with what the pages draw of it: the probe
    digit's ``activations`` per layer 1..L, and, once a mini-batch has been trained, that
    mini-batch's mean ``activation_gradients`` (dC/da per layer 1..L) and first-layer weight
    gradient ``gradient_map`` ([n_hidden1, 784])."""

    run: str
    batch: int
    network: Network  # a copy, never trained: the web process classifies with it
    activations: list[np.ndarray]
    activation_gradients: list[np.ndarray] | None
    gradient_map: np.ndarray | None
    lane: int | None = None  # which lane of the race; None outside a race


@dataclass(frozen=True)
class CostRecord:
    """A run's mini-batches so far, as stored: what the cost chart of a restored run starts
    from. Arrays are in batch order from ``first_batch``."""

    first_batch: int
    costs: np.ndarray
    gradient_norms: np.ndarray  # [batches, layers]: the weight-gradient norm per layer
    evaluations: list[tuple[int, Evaluation]]  # (index of the epoch's last batch, result)


@dataclass(frozen=True)
class RunChanged:
    """A new, reset, loaded, restored or resumed run; ``record`` holds what it trained before."""

    state: RunState
    record: CostRecord
    race: RaceState | None = None


@dataclass(frozen=True)
class RaceChanged:
    """A race begun or reset (``race``, with each lane's ``records`` so far), or ended
    (``race`` None). Each lane's snapshot follows; after an end, the run's RunChanged."""

    state: RunState
    race: RaceState | None
    records: list[CostRecord]


@dataclass(frozen=True)
class StatusChanged:
    state: RunState
    race: RaceState | None = None


Report = Reply | Trained | Snapshot | RunChanged | RaceChanged | StatusChanged
