"""The room's drawings on every screen, read by the network as it is now.

One thread of its own does the reading, so that neither the event loop nor the thread that
relays the trainer's reports ever waits for a forward pass. It wakes when the drawings or the
settings change (a route says so), at every evaluation (the relay says so: the snapshot sent
right after an epoch's last mini-batch holds the network that was evaluated), when a run
starts, and every few seconds while the run trains; each time it reads the visible drawings in
one forward pass and publishes one ``gallery`` frame (latest wins). At an evaluation it also
scores the room and reads the MNIST test set, so the room's accuracy is drawn beside the test
accuracy, and both confusion matrices are of the same network.

While the presenter has "learn from the room" on, it gives the trainer the training half of
the visible drawings after every change, and again whenever the trainer announces a run (a
restarted trainer process starts without them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.network import Network
from engine.training import Evaluation
from server.frames import (
    GalleryFrame,
    MnistTestFrame,
    RoomEvaluationFrame,
    gallery_frame,
    mnist_test_frame,
    room_evaluation_frame,
)
from server.gallery import Drawing, Gallery, pixel_rows
from server.scores import RoomScores, confusion_on_test_set, read_room
from server.trainer.client import TrainerClient
from server.trainer.protocol import RaceChanged, Report, RunChanged, Snapshot, Status, Trained
from server.view import RunView

log = logging.getLogger(__name__)

FRAME_INTERVAL = 0.5  # seconds: at most two gallery frames a second, however many arrive
LIVE_INTERVAL = 2.0  # seconds between readings while the run trains
# A reading (thousands of drawings through a wide network) may take at most this share of the
# time between two of them while the run trains.
READING_SHARE = 0.05


@dataclass
class Work:
    """What the thread has to do before its next frame; several requests of a kind make one."""

    sync_trainer: bool = False
    run_started: tuple[str, int, int, Network] | None = None  # run, epoch, batches, network
    evaluations: list[tuple[Evaluation, int, Network]] = field(default_factory=list)


class Scoreboard:
    """Keeps the ``gallery`` frame up to date; routes and the relay only tell it what changed."""

    def __init__(
        self, gallery: Gallery, view: RunView, publish: Callable[[GalleryFrame], None]
    ) -> None:
        self.gallery = gallery
        self.view = view
        self.publish = publish
        self.trainer: TrainerClient | None = None
        self.run: str | None = None  # whose evaluations are kept
        self.evaluations: list[RoomEvaluationFrame] = []
        self.test: MnistTestFrame | None = None
        self._work = Work()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._syncing = threading.Lock()
        self._trainer_learns = False
        self._evaluated: tuple[str, int, Evaluation, int] | None = None  # awaiting its snapshot
        self._starting: tuple[str, int] | None = None  # a run announced, awaiting its snapshot
        self._reading_seconds = 0.0
        self._thread = threading.Thread(target=self._serve, name="scoreboard", daemon=True)

    def start(self, trainer: TrainerClient) -> None:
        self.trainer = trainer
        self._thread.start()
        self._ask()

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(10)

    # What routes and the relay say

    def gallery_changed(self) -> None:
        """Drawings arrived, were hidden or deleted, or a setting changed."""
        self._ask(sync_trainer=True)

    def take(self, report: Report) -> None:
        """Every trainer report, from the relay: evaluations and new runs matter here."""
        match report:
            case RunChanged(state=state) | RaceChanged(state=state):  # during a race: lane 0
                self._starting = (state.id, state.epoch)
                self._ask(sync_trainer=True)
            case Trained(records=records):
                for record in records:
                    if record.evaluation is not None and not record.lane:
                        evaluated = (record.run, record.index + 1, record.evaluation, record.index)
                        self._evaluated = evaluated
            case Snapshot(run=run, batch=batch, network=network, lane=None | 0):
                self._take_snapshot(run, batch, network)

    def _take_snapshot(self, run: str, batch: int, network: Network) -> None:
        if self._starting is not None and self._starting[0] == run:
            self._ask(run_started=(run, self._starting[1], batch, network))
            self._starting = None
        if self._evaluated is not None and self._evaluated[:2] == (run, batch):
            evaluation, last_batch = self._evaluated[2:]
            self._ask(evaluation=(evaluation, last_batch, network))
            self._evaluated = None

    def _ask(
        self,
        *,
        sync_trainer: bool = False,
        run_started: tuple[str, int, int, Network] | None = None,
        evaluation: tuple[Evaluation, int, Network] | None = None,
    ) -> None:
        """Wake the thread for a new frame, with what else to do first."""
        with self._lock:
            work = self._work
            work.sync_trainer |= sync_trainer
            if run_started is not None:
                work.run_started = run_started
                work.evaluations.clear()  # they belong to the run before
            if evaluation is not None:
                work.evaluations.append(evaluation)
        self._wake.set()

    # Reading

    def read(self, drawings: tuple[Drawing, ...], network: Network | None = None) -> RoomScores:
        """``drawings`` read by ``network``, by default the network as it is now."""
        held_out = np.array([self.gallery.held_out(d) for d in drawings], bool)
        return read_room(network or self.view.network, drawings, held_out)

    def sync_trainer(self) -> None:
        """Give the trainer the training half while learning is on (and say so once when it
        goes off). Raises TrainerUnavailable if the trainer cannot take it now: it gets it
        again when it announces its run."""
        assert self.trainer is not None
        with self._syncing:
            learn = self.gallery.settings.learn
            if not (learn or self._trainer_learns):
                return
            training = self.gallery.training_half() if learn else ()
            labels = np.array([d.label for d in training], np.uint8)
            self.trainer.learn_from_room(learn, pixel_rows(training), labels)
            self._trainer_learns = learn

    # The thread

    def _serve(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self._live_interval())
            self._wake.clear()
            if self._closing.is_set():
                return
            with self._lock:
                work, self._work = self._work, Work()
            try:
                self._do(work)
            except Exception:  # one failed reading must not stop the next ones
                log.exception("could not update the room's gallery on the screens")
            self._closing.wait(FRAME_INTERVAL)

    def _live_interval(self) -> float | None:
        """How long to wait for news: while the run trains, the reading goes stale."""
        if self.view.state.status is not Status.RUNNING:
            return None
        return max(LIVE_INTERVAL, self._reading_seconds / READING_SHARE)

    def _do(self, work: Work) -> None:
        if work.sync_trainer:
            self._sync_quietly()
        if work.run_started is not None:
            self._start_run(*work.run_started)
        for evaluation, last_batch, network in work.evaluations:
            self._score_evaluation(evaluation, last_batch, network)
        self._publish()

    def _sync_quietly(self) -> None:
        try:
            self.sync_trainer()
        except Exception as error:  # the trainer is restarting; it is synced when it is back
            log.warning("the trainer did not take the room's drawings (%s)", error)

    def _start_run(self, run: str, epoch: int, batches: int, network: Network) -> None:
        if run != self.run:
            self.run = run
            self.evaluations = []
        confusion = confusion_on_test_set(network, self.view.dataset)
        self.test = mnist_test_frame(epoch, batches, confusion)

    def _score_evaluation(self, evaluation: Evaluation, last_batch: int, network: Network) -> None:
        scores = self.read(self.gallery.visible(), network)
        self.evaluations.append(room_evaluation_frame(evaluation.epoch, last_batch, scores))
        confusion = confusion_on_test_set(network, self.view.dataset)
        self.test = mnist_test_frame(evaluation.epoch, last_batch + 1, confusion)

    def _publish(self) -> None:
        snapshot = self.view.snapshot
        gallery = self.gallery
        started = time.perf_counter()
        scores = self.read(gallery.visible())
        self._reading_seconds = time.perf_counter() - started
        frame = gallery_frame(
            snapshot.run,
            snapshot.batch,
            gallery.version,
            gallery.settings,
            gallery.capacity,
            scores,
            list(self.evaluations),
            self.test,
        )
        self.publish(frame)
