"""The run the trainer process trains: a :class:`Trainer`, its id, its status and pace, and the
counters a page shows. No threads, no pipes and no files: the worker drives it, one command or
one mini-batch at a time."""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections import deque

import numpy as np

from engine.explain import frozen_copy
from engine.training import Diverged, Trainer
from server.config import COST_WINDOW, DEFAULT_SPEED
from server.trainer.protocol import BatchRecord, Conflict, RunState, Snapshot, Status


class LiveRun:
    """One run: what it trains, where it is, and what it may do next."""

    def __init__(
        self,
        trainer: Trainer,
        run_id: str | None = None,
        status: Status = Status.IDLE,
        speed: float | None = DEFAULT_SPEED,
        seconds: float = 0.0,
        lane: int | None = None,
    ) -> None:
        self.trainer = trainer
        self.id = run_id or uuid.uuid4().hex[:12]
        self.status = Status.FINISHED if trainer.finished else status
        self.message: str | None = None
        self.speed = speed
        self.seconds = seconds
        self.recent_costs: deque[float] = deque(maxlen=COST_WINDOW)
        self.last_cost: float | None = None
        self.lane = lane  # its place in a race; None outside one
        self.snapshot_at = -math.inf  # monotonic time of its latest snapshot

    def state(self) -> RunState:
        trainer, progress = self.trainer, self.trainer.progress
        last = progress.evaluations[-1] if progress.evaluations else None
        costs = self.recent_costs
        return RunState(
            id=self.id,
            status=self.status,
            message=self.message,
            config=trainer.config,
            speed=self.speed,
            epoch=progress.epoch,
            batches_trained=progress.batch_index,
            examples_seen=progress.examples_seen,
            batches_per_epoch=trainer.batches_per_epoch,
            seconds=self.seconds,
            last_cost=self.last_cost,
            cost_average=sum(costs) / len(costs) if costs else None,
            test_accuracy=last.accuracy if last else None,
            test_cost=last.cost if last else None,
        )

    def recent_cost(self, examples: int) -> float | None:
        """The mean cost of the latest mini-batches that hold ``examples`` examples (at least
        one mini-batch; at most ``COST_WINDOW``)."""
        batch = min(self.trainer.config.batch_size, self.trainer.dataset.train_size)
        count = min(len(self.recent_costs), max(1, math.ceil(examples / batch)))
        if count == 0:
            return None
        return sum(itertools.islice(reversed(self.recent_costs), count)) / count

    def set_status(self, status: Status, message: str | None = None) -> None:
        self.status = status
        self.message = message

    def check_can_train(self) -> None:
        if self.status.ended:
            raise Conflict(
                f"the run has {self.status.value}; reset it or post a new config to train again"
            )

    def train_one(self) -> BatchRecord:
        """Train the next mini-batch. A diverging step is not applied: the run stops with
        status ``diverged`` and :class:`Diverged` goes on to the caller."""
        started = time.perf_counter()
        try:
            report = self.trainer.step()
        except Diverged as error:
            self.set_status(Status.DIVERGED, str(error))
            raise
        self.seconds += time.perf_counter() - started
        self.last_cost = report.cost
        self.recent_costs.append(report.cost)
        if self.trainer.finished:
            self.set_status(Status.FINISHED, f"finished all {self.trainer.config.epochs} epochs")
        return BatchRecord(
            self.id,
            report.index,
            report.epoch,
            report.cost,
            report.examples_seen,
            report.gradient_stats,
            time.time(),
            self.seconds,
            report.evaluation,
            self.lane,
        )

    def snapshot(self, probe_pixels: np.ndarray) -> Snapshot:
        """The network as it is now, with the probe digit's activations and the latest
        mini-batch's mean dC/da. Call it between mini-batches: the gradients live in the
        training workspace."""
        trainer = self.trainer
        network = frozen_copy(trainer.network)
        forward = network.forward(probe_pixels[None, :])
        gradients = trainer.last_gradients
        activation_gradients = gradient_map = None
        if gradients is not None:
            # Each row is one example's dC/da divided by the batch size: the sum over the rows
            # is the mini-batch's mean.
            activation_gradients = [rows.sum(axis=0) for rows in gradients.activation_gradients]
            gradient_map = gradients.weights[0].copy()
        return Snapshot(
            self.id,
            trainer.progress.batch_index,
            network,
            [a[0].copy() for a in forward.activations[1:]],
            activation_gradients,
            gradient_map,
            self.lane,
        )
