"""A race: 2 to 4 runs (lanes) trained side by side in the one trainer process, so that their
configs are the only difference between them.

Every lane gets the same seed, so lanes of the same architecture start from the same weights
and every lane sees the training examples in the same shuffled order. The worker trains one
mini-batch at a time of the lane that is furthest behind: by examples seen (pace "examples") or
by training seconds (pace "time"). A *round* moves every lane on by the same amount, the
largest lane batch in examples or ``ROUND_SECONDS`` of training; the race's speed is in rounds
per second. A lane that diverges or finishes drops out; the others go on.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from engine.data.mnist import Dataset
from engine.training import Trainer
from server.config import RACE_COST_EXAMPLES
from server.trainer.protocol import LaneConfig, LaneState, RaceState, Status
from server.trainer.run import LiveRun

PACES = ("examples", "time")
ROUND_SECONDS = 0.1  # a round of pace "time": this much training per lane
LANES = (2, 4)  # the fewest and the most lanes of a race


@dataclass
class Lane:
    label: str
    run: LiveRun


class Race:
    """The lanes, the pace, and where the current round ends."""

    def __init__(
        self,
        lanes: Sequence[LaneConfig],
        pace: str,
        dataset: Dataset,
        speed: float | None,
        before: LiveRun,
    ) -> None:
        seed = lanes[0].config.seed
        self.id = uuid.uuid4().hex[:12]
        self.pace = pace
        self.speed = speed
        self.status = Status.PAUSED
        self.rounds = 0
        self.stepping = False  # a step: running to the end of this round, then paused
        self.before = before  # the single run that comes back when the race ends
        self.lanes = [
            Lane(
                lane.label,
                LiveRun(
                    Trainer(dataclasses.replace(lane.config, seed=seed), dataset),
                    status=Status.PAUSED,
                    speed=speed,
                    lane=index,
                ),
            )
            for index, lane in enumerate(lanes)
        ]
        self.round_size = ROUND_SECONDS if pace == "time" else self.largest_batch()

    def largest_batch(self) -> int:
        """The most examples a lane's mini-batch holds (a batch larger than the training set
        holds all of it)."""
        return max(
            min(run.trainer.config.batch_size, run.trainer.dataset.train_size) for run in self.runs
        )

    @property
    def configs(self) -> tuple[LaneConfig, ...]:
        return tuple(LaneConfig(lane.label, lane.run.trainer.config) for lane in self.lanes)

    @property
    def runs(self) -> list[LiveRun]:
        return [lane.run for lane in self.lanes]

    def progress(self, lane: Lane) -> float:
        """How far ``lane`` has come in the pace's unit."""
        run = lane.run
        return run.trainer.progress.examples_seen if self.pace == "examples" else run.seconds

    def next_lane(self) -> Lane | None:
        """The lane to train next in this round (the furthest behind; ties: the first); None
        when the round is done."""
        target = self.rounds * self.round_size
        behind = [
            lane
            for lane in self.lanes
            if not lane.run.status.ended and self.progress(lane) < target
        ]
        return min(behind, key=self.progress, default=None)

    def begin_round(self) -> None:
        self.rounds += 1

    @property
    def ended(self) -> bool:
        """Whether every lane has finished or diverged."""
        return all(lane.run.status.ended for lane in self.lanes)

    def set_status(self, status: Status) -> None:
        """The race's status, and every lane's that has not ended."""
        self.status = status
        self.stepping = False
        for run in self.runs:
            if not run.status.ended:
                run.set_status(status)

    def state(self) -> RaceState:
        return RaceState(
            self.id,
            self.pace,
            self.status,
            self.speed,
            self.rounds,
            self.stepping,
            [
                LaneState(
                    lane.label,
                    lane.run.state(),
                    lane.run.recent_cost(RACE_COST_EXAMPLES),
                    lane.run.trainer.config.layer_sizes,
                )
                for lane in self.lanes
            ],
        )
