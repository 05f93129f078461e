"""The trainer process: one run, or a race of runs, trained between the commands that the web
process sends.

Everything that changes the run happens here, in one thread: a command runs between two
mini-batches, so a new config can never land in the middle of a step. What training does goes
back to the web process as reports (:mod:`server.trainer.protocol`); mini-batches are sent in
groups every ``FLUSH_INTERVAL`` at full speed, since one message per mini-batch would cost more
than the mini-batch. The web process's event loop, its clients and their requests run in
another interpreter and never take this one's time.

During a race (:mod:`server.trainer.race`) the same loop trains one mini-batch of one lane at a
time; the run controls act on the race (a step is one round), and ``self.run`` is lane 0, the
network that classify, explain and the model read. Commands wait for the mini-batch in hand, so
a full-batch lane (one step of 60,000 examples: about 1 s for 3Blue1Brown's network) can keep
a command waiting that long. A race's step answers at once and runs the round under way to
its end, then pauses (``stepping`` in the race's state meanwhile).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.checkpoint import CheckpointError
from engine.data.mnist import Dataset, load_dataset, to_unit_floats
from engine.explain import teach
from engine.training import Diverged, ExtraExamples, TrainConfig, Trainer
from server.frames import SNAPSHOT_INTERVAL
from server.store import RaceTag, StoreError
from server.trainer.probe import choose_probe
from server.trainer.protocol import (
    BatchRecord,
    Command,
    Conflict,
    EndRace,
    Invalid,
    LaneConfig,
    LearnFromRoom,
    LoadCheckpoint,
    NewRace,
    NewRun,
    NotFound,
    Pause,
    RaceChanged,
    RaceState,
    Reply,
    Report,
    Request,
    Reset,
    ResumeRun,
    RunChanged,
    SaveCheckpoint,
    SetLearningRate,
    SetSpeed,
    Shutdown,
    Start,
    Status,
    StatusChanged,
    Step,
    Teach,
    Trained,
)
from server.trainer.race import Race
from server.trainer.recorder import Recorder, no_record
from server.trainer.run import LiveRun

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.02  # seconds between reports of trained mini-batches at full speed
# At full speed the command pipe is looked at once per this many seconds, not after every
# mini-batch: a look (a poll() system call through a new selector) cost a twentieth of a small
# network's mini-batch. A command waits at most this long for the current one to be done.
COMMAND_INTERVAL = 0.005
REPORT_PIPE_BYTES = 1 << 20  # Linux's default ceiling for an unprivileged process
LONGEST_WAIT = 60.0  # a wait the clock cannot represent would stop the worker


class Commands(Protocol):
    """Where requests come from: the end of a pipe, or Redis (:mod:`server.trainer.streams`)."""

    def poll(self, timeout: float | None = 0.0) -> bool: ...

    def recv(self) -> Any: ...


class Reports(Protocol):
    """Where reports go: the end of a pipe, or Redis."""

    def send(self, obj: Any) -> None: ...


@dataclass(frozen=True)
class TrainerSettings:
    """What the trainer process needs to know: where the data and the run library are."""

    data_dir: Path | None
    state_dir: Path


def main(settings: TrainerSettings, commands: Connection, reports: Connection) -> None:
    """The trainer process's entry point (started by :mod:`server.trainer.client`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the web process's to handle
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    widen(reports)
    dataset = load_dataset(settings.data_dir)
    worker = Worker(dataset, Recorder(settings.state_dir, dataset), reports)
    try:
        worker.serve(commands)
    finally:
        worker.recorder.close()


def room_examples(command: LearnFromRoom) -> ExtraExamples | None:
    """What the trainer mixes into its mini-batches for ``command``: nothing when it is off or
    the room has drawn nothing yet."""
    if not command.on or len(command.labels) == 0:
        return None
    return ExtraExamples(to_unit_floats(command.pixels), np.asarray(command.labels, np.uint8))


def widen(pipe: Connection) -> None:
    """Give the report pipe room for a whole snapshot where the system allows it (Linux).

    A small network's snapshot is about 100 kB and a pipe holds 64 kB: every snapshot made the
    trainer wait until the web process had read it, so a web process slow to be scheduled (a
    busy machine) slowed training down.
    """
    try:
        import fcntl  # POSIX only
    except ImportError:
        return
    resize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if resize is None:
        return
    with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: keep the default
        fcntl.fcntl(pipe.fileno(), resize, REPORT_PIPE_BYTES)


class Pacer:
    """When the next mini-batch is due: a steady beat at the run's speed."""

    def __init__(self) -> None:
        self.due = time.monotonic()

    def restart(self) -> None:
        self.due = time.monotonic()

    def wait_time(self, status: Status, speed: float | None) -> float | None:
        """Seconds until the next mini-batch (or round); None while not running."""
        if status is not Status.RUNNING:
            return None
        if speed is None:
            return 0.0
        return min(max(0.0, self.due - time.monotonic()), LONGEST_WAIT)

    def advance(self, speed: float | None) -> None:
        """After a stall, carry on from now, not in a burst."""
        now = time.monotonic()
        self.due = now if speed is None else max(self.due + 1.0 / speed, now)


class Worker:
    """Runs commands and trains the run, reporting both to the web process."""

    def __init__(self, dataset: Dataset, recorder: Recorder, reports: Reports) -> None:
        self.dataset = dataset
        self.recorder = recorder
        self.reports = reports
        self.probe = choose_probe(dataset)
        self.pacer = Pacer()
        self.pending: list[BatchRecord] = []
        self.flushed_at = 0.0
        self.commands_at = 0.0
        self.race: Race | None = None
        self.room: ExtraExamples | None = None  # the room's drawings, in every run's batches
        restored = recorder.restore()
        if restored is None:
            self.run = LiveRun(Trainer(TrainConfig(), dataset))
            recorder.new_run(self.run)
            self.announce(no_record(0))
        else:
            self.run = restored[0]
            self.announce(restored[1])

    def serve(self, commands: Commands) -> None:
        """Until a :class:`Shutdown` or the web process goes away."""
        while True:
            wait = self.wait_time()
            if self.pending and wait != 0.0:
                self.flush()  # nothing trains meanwhile: send what there is
            try:
                if self.look_for_commands(wait) and commands.poll(wait):
                    request: Request = commands.recv()
                    if isinstance(request.command, Shutdown):
                        self.shut_down(request)
                        return
                    self.answer(request)
                    continue
            except (EOFError, OSError):
                log.info("the web process has gone; saving the run and stopping")
                self.shut_down(None)
                return
            if self.race is None:
                self.pacer.advance(self.run.speed)
                self.train_one(self.run)
            else:
                self.train_race(self.race)
            if time.monotonic() - self.flushed_at >= FLUSH_INTERVAL:
                self.flush()

    def wait_time(self) -> float | None:
        """Seconds until the next mini-batch: the run's pace, or the race's between rounds
        (within a round, the lanes train one after the other)."""
        race = self.race
        if race is None:
            return self.pacer.wait_time(self.run.status, self.run.speed)
        if race.status is Status.RUNNING and (race.stepping or race.next_lane() is not None):
            return 0.0  # within a round, and at the end of a stepped one
        return self.pacer.wait_time(race.status, race.speed)

    def look_for_commands(self, wait: float | None) -> bool:
        """Whether to look at the pipe now: always when waiting anyway, and at full speed
        (``wait`` 0) once per ``COMMAND_INTERVAL``."""
        if wait != 0.0:
            return True
        now = time.monotonic()
        if now < self.commands_at:
            return False
        self.commands_at = now + COMMAND_INTERVAL
        return True

    # Reports

    def send(self, report: Report) -> None:
        """Send ``report`` after every mini-batch trained before it, so the web process sees
        them in the order they happened."""
        self.flush()
        self.reports.send(report)

    def flush(self) -> None:
        self.flushed_at = time.monotonic()
        if not self.pending:
            return
        records, self.pending = self.pending, []
        if self.race is None:
            self.recorder.record(self.run, records)
        else:
            for run in self.race.runs:
                self.recorder.record(run, [record for record in records if record.run == run.id])
        self.reports.send(Trained(records, self.run.state(), self.race_state()))

    def race_state(self) -> RaceState | None:
        return None if self.race is None else self.race.state()

    def announce(self, record: Any) -> None:
        self.send(RunChanged(self.run.state(), record))
        self.send_snapshot(self.run)

    def send_snapshot(self, run: LiveRun) -> None:
        run.snapshot_at = time.monotonic()
        self.send(run.snapshot(self.probe.pixels))

    def status_changed(self) -> None:
        self.send(StatusChanged(self.run.state(), self.race_state()))

    # Training

    def train_race(self, race: Race) -> None:
        """One mini-batch of the lane furthest behind, beginning a round when one is due."""
        lane = race.next_lane()
        if lane is None and race.stepping:
            self.round_stepped(race)
            return
        if lane is None:
            race.begin_round()
            self.pacer.advance(race.speed)
            lane = race.next_lane()
        if lane is not None:
            self.train_one(lane.run)
            if lane.run.status is Status.PAUSED and race.status is Status.RUNNING:
                race.set_status(Status.PAUSED)  # an internal error paused the lane
                self.status_changed()
        if race.ended and race.status is not Status.FINISHED:
            race.set_status(Status.FINISHED)
            self.status_changed()

    def train_one(self, run: LiveRun) -> None:
        try:
            record = run.train_one()
        except Diverged:
            self.send_snapshot(run)
            self.status_changed()
            self.recorder.save_state(run)
            return
        except Exception:
            log.exception("training stopped by an unexpected error")
            run.set_status(Status.PAUSED, "training stopped by an internal error (see the log)")
            self.status_changed()
            return
        self.pending.append(record)
        if record.evaluation is not None:
            self.flush()  # the epoch's mini-batches go into the library before its weights
            self.recorder.epoch_ended(run)
        if (
            record.evaluation is not None
            or run.status is Status.FINISHED
            or time.monotonic() - run.snapshot_at >= SNAPSHOT_INTERVAL
        ):
            self.send_snapshot(run)
        if run.status is Status.FINISHED:
            self.status_changed()
            self.recorder.save_state(run)

    # Commands

    def answer(self, request: Request) -> None:
        value: Any = None
        error: Exception | None = None
        try:
            value = self.execute(request.command)
        except (Conflict, Invalid, NotFound, StoreError) as refusal:  # answered as they are
            error = refusal
        except ValueError as invalid:  # ConfigError, CheckpointError: a value the run can't take
            error = Invalid(str(invalid))
        except Exception as failure:
            log.exception("a %s command failed", type(request.command).__name__)
            error = RuntimeError(f"the trainer failed: {failure}")
        self.send(Reply(request.id, self.run.state(), value, error, self.race_state()))

    def execute(self, command: Command) -> Any:
        match command:
            case Start():
                self.start()
            case Pause():
                self.pause()
            case Step():
                self.step()
            case Reset() if self.race is not None:
                self.new_race(self.race.configs, self.race.pace)
            case Reset():
                self.replace(LiveRun(Trainer(self.run.trainer.config, self.dataset)))
            case NewRun(config):
                self.end_race()
                self.replace(LiveRun(Trainer(config, self.dataset)))
            case SetLearningRate(lr):
                self.refuse_during_race("its lanes' learning rates are in their configs")
                self.set_learning_rate(lr)
            case SetSpeed(speed):
                self.set_speed(speed)
            case LoadCheckpoint(checkpoint):
                try:
                    trainer = checkpoint.trainer(self.dataset)
                except CheckpointError as error:  # it does not fit this server's data set
                    raise Invalid(f"body: {error}") from None
                self.end_race()
                self.replace(LiveRun(trainer, status=Status.PAUSED))
            case ResumeRun(run_id, epoch):
                self.resume(run_id, epoch)
            case SaveCheckpoint():
                return self.recorder.checkpoint_bytes(self.run)
            case Teach(pixels, label, lr):
                self.refuse_during_race("teaching lane 0 alone would spoil it")
                lesson = teach(self.run.trainer.network, pixels, label, lr)
                self.send_snapshot(self.run)
                self.recorder.save_state(self.run)
                return lesson
            case LearnFromRoom():
                self.room = room_examples(command)
                if self.race is None:  # a race's lanes train on MNIST alone, the same for all
                    self.run.trainer.extra_examples = self.room
            case NewRace(lanes, pace):
                self.new_race(lanes, pace)
            case EndRace():
                if self.race is None:
                    raise NotFound("no race is on")
                self.end_race()
        return None

    def refuse_during_race(self, why: str) -> None:
        if self.race is not None:
            raise Conflict(f"a race is on: {why}; end the race first")

    def start(self) -> None:
        self.pacer.restart()
        if self.race is not None:
            if self.race.ended:
                raise Conflict("every lane of the race has ended; reset it or post a new race")
            self.race.set_status(Status.RUNNING)
        else:
            self.run.check_can_train()
            self.run.set_status(Status.RUNNING)
        self.status_changed()

    def pause(self) -> None:
        race = self.race
        if race is not None:
            if race.status is Status.RUNNING:
                race.set_status(Status.PAUSED)
                for run in race.runs:
                    self.send_snapshot(run)
                self.status_changed()
            self.flush()
            self.save_states(wait=True)
            return
        if self.run.status is Status.RUNNING:
            self.run.set_status(Status.PAUSED)
            self.send_snapshot(self.run)  # the picture of where it stopped, not of 0.1 s before
            self.status_changed()
        if self.run.status is Status.PAUSED:
            self.flush()
            self.recorder.save_state(self.run, wait=True)

    def step(self) -> None:
        if self.race is not None:
            self.step_race(self.race)
            return
        run = self.run
        run.check_can_train()
        run.set_status(Status.PAUSED)
        shown_at = run.snapshot_at
        self.train_one(run)
        if run.snapshot_at == shown_at:  # the mini-batch did not bring one of its own
            self.send_snapshot(run)
        self.status_changed()
        self.flush()
        self.recorder.save_state(run)

    def step_race(self, race: Race) -> None:
        """Run the rest of the round under way (or the next one) and pause at its end. The
        reply does not wait for it: a round of the batch-size race is seconds of training, and
        meanwhile the lanes are seen moving and a pause still stops them."""
        if race.ended:
            raise Conflict("every lane of the race has ended; reset it or post a new race")
        if race.next_lane() is None:
            race.begin_round()
        race.set_status(Status.RUNNING)
        race.stepping = True
        self.status_changed()

    def round_stepped(self, race: Race) -> None:
        """The stepped round is done: paused, with every lane's picture as it stopped."""
        race.set_status(Status.FINISHED if race.ended else Status.PAUSED)
        for run in race.runs:
            self.send_snapshot(run)
        self.status_changed()
        self.flush()
        self.save_states()

    def set_speed(self, speed: float | None) -> None:
        if self.race is not None:
            self.race.speed = speed
        for run in self.race.runs if self.race else [self.run]:
            run.speed = speed
        self.pacer.restart()  # the new pace starts now, not after the old one's beat
        self.status_changed()

    def set_learning_rate(self, lr: float) -> None:
        trainer = self.run.trainer
        config = dataclasses.replace(trainer.config, lr=lr)  # validates it
        trainer.lr = lr
        trainer.config = config
        self.status_changed()

    def replace(self, run: LiveRun) -> None:
        """Make ``run`` the live run, at the same pace as the one it replaces."""
        run.speed = self.run.speed
        run.trainer.extra_examples = self.room
        self.flush()
        self.run = run
        self.recorder.new_run(run)
        self.announce(no_record(run.trainer.progress.batch_index))
        self.status_changed()

    def resume(self, run_id: str, epoch: int | None) -> None:
        """Make a run of the library live again at the end of ``epoch``, paused. The run it
        replaces is paused and saved first; it may be the same run, gone back in time."""
        resumed = self.recorder.stored_run(run_id, epoch, self.run.speed)  # may refuse
        self.end_race()
        if self.run.status is Status.RUNNING:
            self.run.set_status(Status.PAUSED)
        self.flush()
        self.recorder.save_state(self.run)
        self.run = resumed
        self.announce(self.recorder.resumed(resumed))
        self.status_changed()

    # Races

    def new_race(self, lanes: Sequence[LaneConfig], pace: str) -> None:
        """Replace the live run, or race, with a race of ``lanes``, paused. The run live before
        the first race is paused and saved, to come back when the races end."""
        if self.race is None:
            before = self.run
            if before.status is Status.RUNNING:
                before.set_status(Status.PAUSED)
            speed = before.speed
        else:
            before, speed = self.race.before, self.race.speed
            self.race.set_status(Status.PAUSED)
        self.flush()
        if self.race is None:
            self.recorder.save_state(before)
        else:
            self.save_states()
        race = Race(lanes, pace, self.dataset, speed, before)
        self.race = race
        self.run = race.runs[0]
        for lane in race.lanes:
            self.recorder.new_run(lane.run, race=RaceTag(race.id, lane.run.lane or 0, lane.label))
        self.send(RaceChanged(self.run.state(), race.state(), [no_record(0) for _ in race.lanes]))
        for run in race.runs:
            self.send_snapshot(run)
        self.status_changed()

    def end_race(self) -> None:
        """Pause and save the race's lanes, and make the run live before it live again,
        paused (nothing without a race)."""
        race = self.race
        if race is None:
            return
        race.set_status(Status.PAUSED)
        self.flush()
        self.save_states(wait=True)
        self.race = None
        self.run = race.before
        self.run.trainer.extra_examples = self.room  # the room may have been turned on or off
        record = self.recorder.resumed(self.run)
        self.send(RaceChanged(self.run.state(), None, []))
        self.announce(record)
        self.status_changed()

    def save_states(self, wait: bool = False) -> None:
        """Every lane's state, to resume from (a race is on)."""
        assert self.race is not None
        for run in self.race.runs:
            self.recorder.save_state(run, wait=wait)

    def shut_down(self, request: Request | None) -> None:
        if self.race is not None:
            self.race.set_status(Status.PAUSED)
            self.flush()
            self.save_states()
        if self.run.status is Status.RUNNING:
            self.run.set_status(Status.PAUSED)
        self.flush()
        self.recorder.save_state(self.run, wait=True)
        if request is not None:
            self.reports.send(Reply(request.id, self.run.state(), race=self.race_state()))
