"""The web process's side of the trainer: it starts the trainer process, sends it typed
commands, and hands every report it sends back to ``on_report``.

Commands block their caller (a route running in the thread pool) until the trainer answers;
reports are read by one thread of their own, in order, so a command's answer is always read
after everything the trainer reported before it: when ``step()`` returns, the snapshot of that
step has already been handed on.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from engine.checkpoint import Checkpoint
from engine.explain import Lesson
from engine.training import TrainConfig
from server.trainer import worker
from server.trainer.protocol import (
    COMMAND_TIMEOUT,
    Command,
    EndRace,
    LaneConfig,
    LearnFromRoom,
    LoadCheckpoint,
    NewRace,
    NewRun,
    Pause,
    Reply,
    Report,
    Request,
    Reset,
    ResumeRun,
    RunState,
    SaveCheckpoint,
    SetLearningRate,
    SetSpeed,
    Shutdown,
    Snapshot,
    Start,
    Step,
    Teach,
    TrainerUnavailable,
)

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # loading the full MNIST in a fresh interpreter takes a few seconds
# A trainer that dies is started again after this long, doubled after each quick death.
FIRST_RESTART_DELAY = 1.0
LONGEST_RESTART_DELAY = 30.0
STABLE_SECONDS = 60.0  # a trainer that lived this long died on its own, not at start-up


class TrainerClient:
    """The trainer process, seen from the web process."""

    def __init__(
        self, settings: worker.TrainerSettings, on_report: Callable[[Report], None]
    ) -> None:
        self.settings = settings
        self.on_report = on_report
        self._ids = itertools.count()
        self._waiting: dict[int, Future[Reply]] = {}
        self._send_lock = threading.Lock()
        self._ready = threading.Event()
        self._process: Any = None
        self._commands: Any = None
        self._closing = False
        self._restart_delay = FIRST_RESTART_DELAY
        self._launched_at = 0.0

    # The process

    def launch(self) -> None:
        """Start the trainer process; it announces its run as soon as it has loaded the data
        (see :meth:`wait_ready`)."""
        # spawn, not fork: the web process has threads, and a fork would copy their locks.
        context = multiprocessing.get_context("spawn")
        command_reader, self._commands = context.Pipe(duplex=False)
        report_reader, report_writer = context.Pipe(duplex=False)
        self._process = context.Process(
            target=worker.main,
            args=(self.settings, command_reader, report_writer),
            name="backprop-live trainer",
            daemon=True,
        )
        self._process.start()
        self._launched_at = time.monotonic()
        command_reader.close()
        report_writer.close()
        threading.Thread(
            target=self._read, args=(report_reader,), name="trainer reports", daemon=True
        ).start()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for the trainer's first snapshot: from then on the run can be shown."""
        if not self._ready.wait(timeout):
            raise TrainerUnavailable(f"the trainer did not start within {timeout:.0f} s")

    def close(self, timeout: float = 10.0) -> None:
        """Ask the trainer to save the run and stop; end it if it does not."""
        if self._process is None:
            return
        self._closing = True
        try:
            self._call(Shutdown(), timeout)
        except TrainerUnavailable as error:
            log.warning("%s; stopping it", error)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._commands.close()

    # Commands

    def start(self) -> RunState:
        return self._call(Start()).state

    def pause(self) -> RunState:
        return self._call(Pause()).state

    def step(self) -> RunState:
        return self._call(Step()).state

    def reset(self) -> RunState:
        return self._call(Reset()).state

    def new_run(self, config: TrainConfig) -> RunState:
        return self._call(NewRun(config)).state

    def set_learning_rate(self, lr: float) -> RunState:
        return self._call(SetLearningRate(lr)).state

    def set_speed(self, speed: float | None) -> RunState:
        return self._call(SetSpeed(speed)).state

    def load(self, checkpoint: Checkpoint) -> RunState:
        return self._call(LoadCheckpoint(checkpoint)).state

    def resume(self, run_id: str, epoch: int | None) -> RunState:
        """Make the library's run ``run_id`` live, paused at the end of ``epoch`` (None: its
        last); raises NotFound, Invalid, Conflict or StoreError."""
        return self._call(ResumeRun(run_id, epoch)).state

    def checkpoint_bytes(self) -> bytes:
        value: bytes = self._call(SaveCheckpoint()).value
        return value

    def teach(self, pixels: np.ndarray, label: int, lr: float) -> Lesson:
        lesson: Lesson = self._call(Teach(pixels, label, lr)).value
        return lesson

    def learn_from_room(self, on: bool, pixels: np.ndarray, labels: np.ndarray) -> RunState:
        """Mix the room's drawings (uint8 [n, 784], with their labels) into every mini-batch,
        or stop (``on`` false)."""
        return self._call(LearnFromRoom(on, pixels, labels)).state

    def new_race(self, lanes: Sequence[LaneConfig], pace: str) -> RunState:
        """Replace the live run (or race) with a race of ``lanes``, paused."""
        return self._call(NewRace(tuple(lanes), pace)).state

    def end_race(self) -> RunState:
        """End the race and bring back the run live before it; raises NotFound without one."""
        return self._call(EndRace()).state

    def _call(self, command: Command, timeout: float = COMMAND_TIMEOUT) -> Reply:
        """Send ``command`` and wait for its reply; raise the error it was refused with."""
        future: Future[Reply] = Future()
        request = Request(self._request_id(), command)
        self._waiting[request.id] = future
        try:
            self._send(request)
            reply = future.result(timeout)
        except FutureTimeout as error:
            raise TrainerUnavailable("the trainer did not answer in time; try again") from error
        finally:
            self._waiting.pop(request.id, None)
        if reply.error is not None:
            raise reply.error
        return reply

    def _request_id(self) -> int:
        return next(self._ids)

    def _send(self, request: Request) -> None:
        """Hand ``request`` to the trainer; TrainerUnavailable if it cannot be reached."""
        try:
            with self._send_lock:
                self._commands.send(request)
        except (OSError, ValueError) as error:  # the pipe is closed: the trainer has gone
            raise TrainerUnavailable("the trainer is not running; try again in a moment") from error

    # Reports

    def _read(self, reports: Any) -> None:
        while True:
            try:
                report: Report = reports.recv()
            except (EOFError, OSError):
                break
            if isinstance(report, Reply):
                waiting = self._waiting.get(report.id)
                self._hand_on(report)
                if waiting is not None:
                    waiting.set_result(report)
                continue
            self._hand_on(report)
            if isinstance(report, Snapshot):
                self._ready.set()
        gone = "has stopped" if self._closing else "is restarting; try again in a moment"
        for future in list(self._waiting.values()):
            future.set_exception(TrainerUnavailable(f"the trainer {gone}"))
        if not self._closing:
            self._restart()

    def _restart(self) -> None:
        """The trainer died on its own: start it again, and it resumes the saved run."""
        self._process.join(5)
        if time.monotonic() - self._launched_at >= STABLE_SECONDS:
            self._restart_delay = FIRST_RESTART_DELAY
        log.error(
            "the trainer process stopped (exit code %s); starting it again in %.0f s",
            self._process.exitcode,
            self._restart_delay,
        )
        time.sleep(self._restart_delay)
        self._restart_delay = min(2 * self._restart_delay, LONGEST_RESTART_DELAY)
        if not self._closing:
            self.launch()

    def _hand_on(self, report: Report) -> None:
        try:
            self.on_report(report)
        except Exception:  # one report that cannot be shown must not stop the next ones
            log.exception("could not hand on a %s report", type(report).__name__)
