"""The run (and the race, if one is on) as the web process sees it: the trainer's latest
report and a copy of its weights. During a race, the run is lane 0's.

Routes read it from any thread without locks: each report replaces ``state`` or ``snapshot`` as
a whole, and nothing ever changes either in place, so a reader holding one has a consistent
one. Classify, GET /api/model and explain work on ``network``, which is at most one snapshot
interval (0.1 s) behind the trainer, and exactly current after any command has answered.
"""

from __future__ import annotations

from typing import Any

from engine.data.mnist import SAMPLE_NOTE, Dataset
from engine.network import Network
from server.frames import SECONDS_DIGITS, significant
from server.trainer.probe import Probe, choose_probe
from server.trainer.protocol import (
    LaneState,
    RaceChanged,
    RaceState,
    Reply,
    Report,
    RunChanged,
    RunState,
    Snapshot,
    StatusChanged,
    Trained,
)


class RunView:
    """What every route reads about the run."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.probe: Probe = choose_probe(dataset)
        self._state: RunState | None = None
        self._snapshot: Snapshot | None = None
        self.race: RaceState | None = None  # the race as last reported; None without one

    @property
    def state(self) -> RunState:
        assert self._state is not None, "the trainer has not reported yet"
        return self._state

    @property
    def snapshot(self) -> Snapshot:
        """The trainer's latest snapshot: which run, after which mini-batch, and the network."""
        assert self._snapshot is not None, "the trainer has not sent a snapshot yet"
        return self._snapshot

    @property
    def network(self) -> Network:
        """The latest weights (a copy that nothing trains)."""
        return self.snapshot.network

    @property
    def live_ids(self) -> tuple[str, ...]:
        """The runs the trainer trains now: the run, or every lane's of the race."""
        if self.race is None:
            return (self.state.id,)
        return tuple(lane.state.id for lane in self.race.lanes)

    def take(self, report: Report) -> None:
        match report:
            case Snapshot(lane=None | 0):
                self._snapshot = report
            case (
                Trained(state=state, race=race)
                | RunChanged(state=state, race=race)
                | RaceChanged(state=state, race=race)
                | StatusChanged(state=state, race=race)
                | Reply(state=state, race=race)
            ):
                self._state = state
                self.race = race

    def run_dict(self) -> dict[str, Any]:
        """GET /api/run: everything about the run a page needs to draw its status. ``batch``
        counts the mini-batches trained (the index of the next one)."""
        state, dataset = self.state, self.dataset
        return {
            "id": state.id,
            "status": state.status.value,
            "message": state.message,
            "config": state.config.to_dict(),
            "speed": state.speed,
            "epoch": state.epoch,
            "batch": state.batches_trained,
            "examples_seen": state.examples_seen,
            "batches_per_epoch": state.batches_per_epoch,
            "seconds": round(state.seconds, SECONDS_DIGITS),
            "dataset": {
                "name": dataset.name,
                "source": dataset.source,
                "train_size": dataset.train_size,
                "test_size": dataset.test_size,
                "note": SAMPLE_NOTE if dataset.name == "sample" else None,
            },
            "metrics": {
                "last_cost": None if state.last_cost is None else significant(state.last_cost),
                "cost_average": (
                    None if state.cost_average is None else round(state.cost_average, 6)
                ),
                "test_accuracy": state.test_accuracy,
                "test_cost": state.test_cost,
            },
        }


def race_dict(race: RaceState) -> dict[str, Any]:
    """GET /api/race: the race and every lane's progress."""
    return {
        "id": race.id,
        "pace": race.pace,
        "status": race.status.value,
        "speed": race.speed,
        "rounds": race.rounds,
        "stepping": race.stepping,
        "lanes": [lane_dict(index, lane) for index, lane in enumerate(race.lanes)],
    }


def lane_dict(index: int, lane: LaneState) -> dict[str, Any]:
    state = lane.state
    return {
        "lane": index,
        "label": lane.label,
        "run": state.id,
        "config": state.config.to_dict(),
        "examples_seen": state.examples_seen,
        "steps": state.batches_trained,
        "epoch": state.epoch,
        "seconds": round(state.seconds, SECONDS_DIGITS),
        "cost": None if lane.cost is None else significant(lane.cost),
        "test_accuracy": state.test_accuracy,
        "status": state.status.value,
        "message": state.message,
        "layer_sizes": list(lane.layer_sizes),
    }
