"""The one training run of a server, trained by one background worker thread.

Everything that changes the run happens on the worker: the routes hand it commands (start,
pause, step, reset, a new config, a new learning rate or speed, a loaded checkpoint) and wait
for the answer, and the worker runs them between two mini-batches. So a config change can never
land in the middle of a step, and nothing but the worker ever writes the weights.

Readers on other threads (classify, GET /api/model, checkpoint downloads) take
``weights_lock``, which the worker holds for one mini-batch at a time: they see the weights
either before or after a step, never half-updated, and wait at most one step.

The worker never waits for a browser: it hands what happened to a :class:`Publisher` (the
broadcaster), whose methods only append to a queue.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from engine.checkpoint import Checkpoint
from engine.data.mnist import SAMPLE_NOTE, Dataset
from engine.training import Diverged, TrainConfig, Trainer
from server.frames import BatchRecord, SnapshotFrame, batch_record, choose_probe, snapshot_frame
from server.history import History

log = logging.getLogger(__name__)

# 3Blue1Brown's 784-16-16-10 network, as Nielsen trains it: at 20 mini-batches of 100 digits a
# second the cost visibly falls within ten seconds and an epoch of the full set takes 30.
DEFAULT_CONFIG = TrainConfig()
DEFAULT_SPEED: float | None = 20.0
SNAPSHOT_INTERVAL = 0.1  # seconds between snapshots the worker makes while running
COMMAND_TIMEOUT = 60.0
# Epoch ends are saved at most this often: on the built-in sample at full speed an epoch takes
# a few hundredths of a second, and writing the run that often would halve the training rate.
SAVE_INTERVAL = 1.0
COST_WINDOW = 100  # the "cost average" is the mean of this many latest mini-batches
STATUSES = ("idle", "running", "paused", "finished", "diverged")

T = TypeVar("T")


class SessionConflict(Exception):
    """A command that the run's current status does not allow (answered with 409)."""


class Publisher(Protocol):
    """Where the worker reports what happened; every method must return at once."""

    def publish_run(self, run: str, history: History) -> None: ...
    def publish_batch(self, record: BatchRecord) -> None: ...
    def publish_snapshot(self, snapshot: SnapshotFrame) -> None: ...
    def publish_status(self) -> None: ...


class StateSaver(Protocol):
    def save(self, trainer: Trainer, metadata: dict[str, Any]) -> None: ...
    def load(self) -> Checkpoint | None: ...


@dataclasses.dataclass(frozen=True)
class Counters:
    """Where the run is, replaced as a whole after every mini-batch so readers on other
    threads always see one consistent set."""

    epoch: int = 0
    batch: int = 0
    examples_seen: int = 0
    last_cost: float | None = None
    cost_average: float | None = None
    test_accuracy: float | None = None
    test_cost: float | None = None


class Session:
    """The run: its trainer, its status and pace, and the worker thread that trains it."""

    def __init__(
        self,
        dataset: Dataset,
        publisher: Publisher,
        store: StateSaver | None = None,
        config: TrainConfig = DEFAULT_CONFIG,
        speed: float | None = DEFAULT_SPEED,
    ) -> None:
        self.dataset = dataset
        self.publisher = publisher
        self.store = store
        self.probe = choose_probe(dataset.test_images, dataset.test_labels)
        self.speed = speed
        self.weights_lock = threading.Lock()
        self._wake = threading.Condition()
        self._commands: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._recent_costs: deque[float] = deque(maxlen=COST_WINDOW)
        self._last_snapshot = 0.0
        self._due = 0.0  # when the next mini-batch is due, by time.monotonic()
        self._saved_state: tuple[Any, ...] | None = None
        self._saved_at = -math.inf  # time.monotonic() of the last save
        self.status = "idle"
        self.message: str | None = None
        self._install(Trainer(config, dataset))
        if store is not None:
            self._restore(store)

    # Reading, from any thread

    def run_view(self) -> dict[str, Any]:
        """GET /api/run: everything about the run a page needs to draw its status."""
        trainer, counters = self.trainer, self.counters
        dataset = self.dataset
        return {
            "id": self.run_id,
            "status": self.status,
            "message": self.message,
            "config": trainer.config.to_dict(),
            "speed": self.speed,
            "epoch": counters.epoch,
            "batch": counters.batch,
            "examples_seen": counters.examples_seen,
            "batches_per_epoch": trainer.batches_per_epoch,
            "dataset": {
                "name": dataset.name,
                "source": dataset.source,
                "train_size": dataset.train_size,
                "test_size": dataset.test_size,
                "note": SAMPLE_NOTE if dataset.name == "sample" else None,
            },
            "metrics": {
                "last_cost": counters.last_cost,
                "cost_average": counters.cost_average,
                "test_accuracy": counters.test_accuracy,
                "test_cost": counters.test_cost,
            },
        }

    def read(self, reader: Callable[[Trainer], T]) -> T:
        """``reader(trainer)`` with the weights held still; keep it short."""
        with self.weights_lock:
            return reader(self.trainer)

    # Commands, from any thread: each runs on the worker between two mini-batches

    def start(self) -> dict[str, Any]:
        return self._call(self._start)

    def pause(self) -> dict[str, Any]:
        return self._call(self._pause)

    def step(self) -> dict[str, Any]:
        return self._call(self._step)

    def reset(self) -> dict[str, Any]:
        return self._call(lambda: self._replace(Trainer(self.trainer.config, self.dataset)))

    def new_run(self, config: TrainConfig) -> dict[str, Any]:
        return self._call(lambda: self._replace(Trainer(config, self.dataset)))

    def load(self, checkpoint: Checkpoint) -> dict[str, Any]:
        history = saved_history(checkpoint.metadata)
        return self._call(lambda: self._replace(self._resumed(checkpoint), "paused", history))

    def edit(self, change: Callable[[Trainer], T]) -> T:
        """``change(trainer)`` on the worker between two mini-batches, with the weights locked,
        then a fresh snapshot for every viewer: for changes to the weights outside training,
        such as POST /api/teach's one step on a chosen example. Returns what ``change`` did."""
        done: list[T] = []

        def command() -> None:
            with self.weights_lock:
                done.append(change(self.trainer))
            self._saved_state = None  # not a mini-batch, but the saved weights are now old
            self._publish_snapshot()

        self._call(command)
        return done[0]

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change ``lr`` and/or ``speed`` (mini-batches per second, None: as fast as possible)."""
        return self._call(lambda: self._update(changes))

    # The worker thread

    def start_worker(self) -> None:
        self._thread = threading.Thread(target=self._work, name="training", daemon=True)
        self._thread.start()
        self.publisher.publish_run(self.run_id, self.history.copy())
        self._publish_snapshot()
        self.publisher.publish_status()

    def stop_worker(self, timeout: float = 10.0) -> None:
        """Stop training and save the run (as paused), so the next start resumes it."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.status == "running":
            self.status = "paused"
        with self.weights_lock:  # in case a long step outlived the join
            self._save()

    def _call(self, command: Callable[[], Any]) -> dict[str, Any]:
        future: Future[Any] = Future()
        with self._wake:
            if self._stopping:
                raise SessionConflict("the server is shutting down")
            self._commands.append((command, future))
            self._wake.notify()
        future.result(COMMAND_TIMEOUT)
        return self.run_view()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not (self._commands or self._stopping or self._train_due()):
                    self._wake.wait(self._wait_time())
                if self._stopping:
                    return
                commands = list(self._commands)
                self._commands.clear()
            for command, future in commands:
                try:
                    future.set_result(command())
                except Exception as error:  # handed to the caller, who answers the request
                    future.set_exception(error)
            if self._train_due():
                self._schedule_next()
                self._train_one()

    def _train_due(self) -> bool:
        return self.status == "running" and (self.speed is None or time.monotonic() >= self._due)

    def _wait_time(self) -> float | None:
        if self.status != "running":
            return None
        # Capped: a wait the clock cannot represent would kill the worker (and the run).
        return min(max(0.0, self._due - time.monotonic()), 60.0)

    def _schedule_next(self) -> None:
        """Keep a steady beat at ``speed``; after a stall, carry on from now, not in a burst."""
        now = time.monotonic()
        if self.speed is None:
            self._due = now
        else:
            self._due = max(self._due + 1.0 / self.speed, now)

    def _train_one(self) -> None:
        trainer, run = self.trainer, self.run_id
        snapshot = None
        try:
            with self.weights_lock:
                report = trainer.step()
                record = batch_record(run, report, time.time())
                now = time.monotonic()
                if (
                    report.evaluation
                    or trainer.finished
                    or now - self._last_snapshot >= (SNAPSHOT_INTERVAL)
                ):
                    self._last_snapshot = now
                    snapshot = self._snapshot()
        except Diverged as error:
            self._set_status("diverged", str(error))
            self._publish_snapshot()
            return
        except Exception:
            log.exception("training stopped by an unexpected error")
            self._set_status("paused", "training stopped by an internal error (see the log)")
            return
        self._count(record, report.evaluation)
        self.publisher.publish_batch(record)
        if snapshot is not None:
            self.publisher.publish_snapshot(snapshot)
        if trainer.finished:
            self._set_status("finished", f"finished all {trainer.config.epochs} epochs")
            self._save()
        elif report.evaluation is not None and time.monotonic() - self._saved_at >= SAVE_INTERVAL:
            self._save()

    def _count(self, record: BatchRecord, evaluation: Any) -> None:
        self.history.add(record)
        if record.cost is not None:
            self._recent_costs.append(record.cost)
        old = self.counters
        costs = self._recent_costs
        self.counters = dataclasses.replace(
            old,
            epoch=self.trainer.progress.epoch,
            batch=record.index + 1,
            examples_seen=record.examples_seen,
            last_cost=record.cost,
            cost_average=round(sum(costs) / len(costs), 6) if costs else None,
            test_accuracy=evaluation.accuracy if evaluation else old.test_accuracy,
            test_cost=evaluation.cost if evaluation else old.test_cost,
        )

    # Commands, run on the worker

    def _start(self) -> None:
        if self.status in ("finished", "diverged"):
            raise SessionConflict(
                f"the run has {self.status}; reset it or post a new config to train again"
            )
        self._due = time.monotonic()
        self._set_status("running", None)

    def _pause(self) -> None:
        if self.status == "running":
            self._set_status("paused", None)
        if self.status == "paused":
            self._save()

    def _step(self) -> None:
        if self.status in ("finished", "diverged"):
            raise SessionConflict(f"the run has {self.status}; reset it to train again")
        self.status = "paused"
        self._train_one()
        self._publish_snapshot()
        if self.status == "paused":
            self.publisher.publish_status()

    def _update(self, changes: dict[str, Any]) -> None:
        if "lr" in changes:
            lr = float(changes["lr"])
            config = dataclasses.replace(self.trainer.config, lr=lr)  # validates it
            self.trainer.lr = lr
            self.trainer.config = config
        if "speed" in changes:
            self.speed = changes["speed"]
            self._due = time.monotonic()  # the new pace starts now, not after the old one
        self.publisher.publish_status()

    def _replace(
        self, trainer: Trainer, status: str = "idle", history: History | None = None
    ) -> None:
        with self.weights_lock:
            self._install(trainer, history=history)
        self.status = "finished" if trainer.finished else status
        self.message = None
        self.publisher.publish_run(self.run_id, self.history.copy())
        self._publish_snapshot()
        self.publisher.publish_status()
        self._save()

    # Helpers

    def _install(
        self, trainer: Trainer, run_id: str | None = None, history: History | None = None
    ) -> None:
        """Make ``trainer`` the run's, with counters taken from its progress and the cost
        chart's ``history`` if it is the one that led there."""
        self.trainer = trainer
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._recent_costs.clear()
        progress = trainer.progress
        if history is None or history.next_batch != progress.batch_index:
            history = History(progress.batch_index)
        self.history = history
        last = progress.evaluations[-1] if progress.evaluations else None
        self.counters = Counters(
            epoch=progress.epoch,
            batch=progress.batch_index,
            examples_seen=progress.examples_seen,
            test_accuracy=last.accuracy if last else None,
            test_cost=last.cost if last else None,
        )

    def _resumed(self, checkpoint: Checkpoint) -> Trainer:
        """A trainer from a checkpoint, which may come from a run on a different data set."""
        trainer = checkpoint.trainer(self.dataset)
        progress = trainer.progress
        if progress.batch_in_epoch >= trainer.batches_per_epoch:
            progress.batch_in_epoch = 0  # its epoch was longer than this data set's
        return trainer

    def _restore(self, store: StateSaver) -> None:
        checkpoint = store.load()
        if checkpoint is None:
            return
        try:
            trainer = self._resumed(checkpoint)
        except Exception as error:  # a state file from another version, say: start fresh
            log.warning("could not resume the saved run (%s); starting a fresh one", error)
            return
        metadata = checkpoint.metadata
        run_id = metadata.get("run") if isinstance(metadata.get("run"), str) else None
        speed = metadata.get("speed", self.speed)
        if speed is None or (
            isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0
        ):
            self.speed = speed
        self._install(trainer, run_id, saved_history(metadata))
        self.status = "finished" if trainer.finished else "paused"
        log.info("resumed run %s at mini-batch %d", self.run_id, self.counters.batch)

    def _snapshot(self) -> SnapshotFrame:
        trainer = self.trainer
        return snapshot_frame(
            self.run_id,
            trainer.progress.batch_index,
            trainer.network,
            trainer.last_gradients,
            self.probe,
        )

    def _publish_snapshot(self) -> None:
        with self.weights_lock:
            snapshot = self._snapshot()
        self._last_snapshot = time.monotonic()
        self.publisher.publish_snapshot(snapshot)

    def _set_status(self, status: str, message: str | None) -> None:
        self.status = status
        self.message = message
        self.publisher.publish_status()

    def _save(self) -> None:
        """Save the run, unless the file already holds it as it is now."""
        state = (self.run_id, self.counters.batch, self.trainer.lr, self.speed)
        if self.store is None or state == self._saved_state:
            return
        try:
            metadata = {"run": self.run_id, "speed": self.speed, "history": self.history.to_dict()}
            self.store.save(self.trainer, metadata)
            self._saved_state = state
            self._saved_at = time.monotonic()
        except Exception as error:  # a full disk must not stop the training
            log.warning("could not save the run's state: %s", error)


def saved_history(metadata: dict[str, Any]) -> History | None:
    """The cost chart saved with a checkpoint, if it has a usable one."""
    try:
        return History.from_dict(metadata["history"])
    except (KeyError, ValueError):
        return None
