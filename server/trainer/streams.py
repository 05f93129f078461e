"""The trainer's protocol (:mod:`server.trainer.protocol`) carried through Redis instead of two
pipes, so that one trainer feeds any number of web processes on any number of hosts.

Nothing new is said: the same pickled :class:`Request` s and reports travel, in these keys
(every name starts with :data:`PREFIX`):

``commands``  a stream of requests, read by the one trainer through the consumer group
              ``trainer``. A request is delivered once: the trainer reads it, runs it and
              answers it before it reads the next. A trainer that dies while running one does
              not run it again when it restarts (the group has moved past it), and its web
              process answers 503; requests older than :data:`COMMAND_TIMEOUT` when the trainer
              reads them are dropped, as their callers have given up.
``reports``   a stream of every report in the order the trainer sent it (``Trained``,
              ``RunChanged``, ``StatusChanged`` and every ``Reply``, which each web process
              matches by request id), capped at about :data:`REPORTS_KEPT` entries. A snapshot
              appears here as a :class:`SnapshotNote` naming its entry in ``snapshots``.
``snapshots`` the latest :data:`SNAPSHOTS_KEPT` snapshots (latest wins: a note whose snapshot is
              gone is skipped, a newer one follows it).
``start``     where a web process that starts now begins: a :class:`StartPoint` (the run, its
              cost chart and its latest snapshot as of one entry of ``reports``), rewritten at
              every new run and every :data:`START_INTERVAL` seconds.
``token``     the presenter token of web processes started without one (the first one makes it).
``trainer``   the heartbeat: set while a trainer is alive, expiring :data:`HEARTBEAT_TTL`
              seconds after its last beat; the web processes say "trainer offline" without it.

Everything is pickled, as on the pipes: whoever can write to this Redis can run code in the
trainer and the web processes, so it must be private (a private network, a password).

Redis going away stops the trainer where it is (it waits, retrying with back-off, and says so
in its log); Redis restarted empty is recreated as it is used.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import redis

from server.history import History
from server.trainer.protocol import (
    COMMAND_TIMEOUT,
    RaceChanged,
    RaceState,
    Report,
    Request,
    RunChanged,
    RunState,
    Snapshot,
    Trained,
)

log = logging.getLogger(__name__)

PREFIX = "backprop-live:"
COMMANDS = PREFIX + "commands"
REPORTS = PREFIX + "reports"
SNAPSHOTS = PREFIX + "snapshots"
START = PREFIX + "start"
HEARTBEAT = PREFIX + "trainer"
TOKEN = PREFIX + "token"
GROUP = "trainer"
FIELD = "r"  # every stream entry holds one pickled message under this field

REPORTS_KEPT = 3000  # about a minute at full speed (a report per 20 ms), tens of MB at most
SNAPSHOTS_KEPT = 8
COMMANDS_KEPT = 1000
START_INTERVAL = 1.0  # seconds between start points while reports flow
HEARTBEAT_INTERVAL = 1.0
HEARTBEAT_TTL = 4  # seconds the heartbeat key outlives the last beat (then "trainer offline")
LOOK_INTERVAL = 0.02  # seconds between looks for commands while training at full speed
LONGEST_BLOCK = 1.0  # seconds a read blocks at most, so the heartbeat keeps beating
FIRST_RETRY_DELAY = 0.25
LONGEST_RETRY_DELAY = 8.0

T = TypeVar("T")


@dataclass(frozen=True)
class SnapshotNote:
    """A snapshot's place among the reports; the snapshot is entry ``entry`` of ``snapshots``."""

    entry: str


@dataclass(frozen=True)
class StartPoint:
    """The run as of entry ``entry`` of ``reports`` (its ``state`` and cost chart), and the
    entry of ``snapshots`` that holds its network then: a web process starts from here and
    reads ``reports`` after ``entry``."""

    entry: str
    state: RunState
    history: History
    snapshot: str | None
    race: RaceState | None = None
    lanes: tuple[LaneStart, ...] = ()  # a race's lanes, in order


@dataclass(frozen=True)
class LaneStart:
    """A race's lane as a web process that starts now needs it: its chart and its latest
    network (the snapshot itself: a lane that has ended sends no more, and the snapshots
    stream would have dropped it)."""

    history: History
    snapshot: Snapshot | None


def connect(url: str) -> redis.Redis:
    """A client for ``url`` (``redis://host:port/db``) that fails fast when Redis is away, so
    that :func:`retrying` can say so."""
    return redis.Redis.from_url(url, socket_connect_timeout=2.0, health_check_interval=10)


def retrying(what: str, action: Callable[[], T], stop: Callable[[], bool] = lambda: False) -> T:
    """``action()``, tried again with back-off while Redis cannot be reached; says in the log
    when Redis is away and when it is back. Raises EOFError if ``stop()`` becomes true."""
    delay = FIRST_RETRY_DELAY
    failed = False
    while True:
        try:
            result = action()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if stop():
                raise EOFError("stopping") from error
            if not failed or delay >= LONGEST_RETRY_DELAY:
                log.warning("redis unreachable while %s (%s); retry in %.1f s", what, error, delay)
            failed = True
            time.sleep(delay)
            delay = min(2 * delay, LONGEST_RETRY_DELAY)
            continue
        if failed:
            log.warning("redis is back; %s again", what)
        return result


def shared_token(url: str, new_token: str) -> str:
    """The presenter token every web process on ``url`` uses: ``new_token`` unless one of them
    has stored its own already."""
    client = connect(url)
    try:
        client.set(TOKEN, new_token, nx=True)
        token: Any = client.get(TOKEN)
        return str(token.decode())
    finally:
        client.close()


def trainer_online(url: str) -> bool:
    client = connect(url)
    try:
        return bool(client.exists(HEARTBEAT))
    finally:
        client.close()


def dump(message: Any) -> Any:
    """A stream entry's fields holding ``message``."""
    return {FIELD: pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)}


def load(fields: Any) -> Any:
    """The message in a stream entry's fields."""
    return pickle.loads(fields[FIELD.encode()])


def entry_ms(entry: str) -> int:
    """The Redis clock's milliseconds at which stream entry ``entry`` was added."""
    return int(entry.split("-")[0])


class TrainerLink:
    """The trainer's end of Redis, shaped like the two pipes :class:`Worker` reads and writes:
    ``poll``/``recv`` for commands, ``send`` for reports."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = connect(url)
        self.stopping = False
        self.beaten_at = -HEARTBEAT_INTERVAL
        self.received: Request | None = None
        self.look_at = 0.0  # monotonic time of the next look without waiting
        self.last_entry = "0-0"
        self.history: History | None = None
        self.state: RunState | None = None
        self.snapshot: str | None = None
        self.race: RaceState | None = None
        self.lane_histories: dict[str, History] = {}  # by run id, during a race
        self.lane_snapshots: dict[str, Snapshot] = {}
        self.started_at = -START_INTERVAL
        retrying("joining the command stream", self._join)

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT end the trainer cleanly: its next look for commands raises
        EOFError, on which :class:`Worker` saves the run and returns."""

        def stop(signum: int, frame: Any) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _join(self) -> None:
        """Create the consumer group if Redis does not have it (a first start, or Redis
        restarted empty). It starts at the stream's beginning: requests sent before it existed
        are run, unless their callers have given up (see :meth:`_read`)."""
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: it exists
            self.redis.xgroup_create(COMMANDS, GROUP, id="0", mkstream=True)

    # Commands, as Worker reads a pipe

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a request is waiting, waiting up to ``timeout`` seconds (None: forever).
        A look without waiting asks Redis at most once per :data:`LOOK_INTERVAL`: a round
        trip costs far more than a pipe's poll, and training at full speed looks often."""
        now = time.monotonic()
        if timeout == 0.0 and self.received is None:
            if now < self.look_at:
                return False
            self.look_at = now + LOOK_INTERVAL
        deadline = None if timeout is None else now + timeout
        while self.received is None:
            if self.stopping:
                log.info("asked to stop: saving the run")
                raise EOFError("asked to stop")
            self._beat()
            wait = LONGEST_BLOCK if deadline is None else deadline - time.monotonic()
            self.received = retrying("reading commands", partial(self._read, wait), self._stop)
            if self.received is None and deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    def recv(self) -> Request:
        self.poll(None)
        request, self.received = self.received, None
        assert request is not None
        return request

    def _stop(self) -> bool:
        return self.stopping

    def _read(self, wait: float) -> Request | None:
        block = None if wait <= 0 else max(1, int(min(wait, LONGEST_BLOCK) * 1000))
        try:
            answer: Any = self.redis.xreadgroup(GROUP, "trainer", {COMMANDS: ">"}, 1, block)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("redis has lost the command stream (restarted?); joining it again")
            self._join()
            return None
        if not answer:
            return None
        entry, fields = answer[0][1][0]
        self.redis.xack(COMMANDS, GROUP, entry)  # read once: never delivered again
        now_ms = self._redis_ms()
        if now_ms - entry_ms(entry.decode()) > COMMAND_TIMEOUT * 1000:
            log.warning("dropped a command that waited longer than its caller does")
            return None
        request: Request = load(fields)
        return request

    def _redis_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self.beaten_at >= HEARTBEAT_INTERVAL:
            self.beaten_at = now
            retrying("beating", self._beat_now, self._stop)

    def _beat_now(self) -> None:
        self.redis.set(HEARTBEAT, "1", ex=HEARTBEAT_TTL)
        if not self.redis.exists(START):  # Redis restarted empty: web processes start here
            self._write_start_point()

    # Reports, as Worker writes a pipe

    def send(self, report: Report) -> None:
        retrying("sending a report", lambda: self._send(report), self._stop)

    def _send(self, report: Report) -> None:
        message: Any = report
        if isinstance(report, Snapshot):
            snapshot: Any = self.redis.xadd(
                SNAPSHOTS, dump(report), maxlen=SNAPSHOTS_KEPT, approximate=False
            )
            self.snapshot = snapshot.decode()
            message = SnapshotNote(snapshot.decode())
        entry: Any = self.redis.xadd(REPORTS, dump(message), maxlen=REPORTS_KEPT)
        self.last_entry = entry.decode()
        self._follow(report)
        now = time.monotonic()
        if isinstance(report, RunChanged) or now - self.started_at >= START_INTERVAL:
            self._write_start_point()
        self._beat()

    def _follow(self, report: Report) -> None:
        """Keep the run's cost chart (a race's: every lane's, with its latest network) as a web
        process starting now needs it."""
        match report:
            case RunChanged(state=state, record=record):
                self.history = History.restored(state.id, record)
                self.state, self.race = state, None
            case RaceChanged(state=state, race=race, records=records):
                self.state, self.race = state, race
                self.lane_snapshots = {}
                self.lane_histories = {
                    lane.state.id: History.restored(lane.state.id, record)
                    for lane, record in zip(race.lanes if race else [], records)
                }
            case Trained(records=batches, state=state, race=race):
                for batch in batches:
                    chart = self._chart(batch.run)
                    if chart is not None:
                        chart.add(batch)
                self.state, self.race = state, race
            case Snapshot():
                if self.race is not None:
                    self.lane_snapshots[report.run] = report
            case _:
                self.state, self.race = report.state, report.race

    def _chart(self, run: str) -> History | None:
        """The cost chart that mini-batches of ``run`` go on, if any."""
        if self.race is not None:
            return self.lane_histories.get(run)
        if self.state is not None and run == self.state.id:
            return self.history
        return None

    def _write_start_point(self) -> None:
        if self.history is None or self.state is None:
            return
        self.started_at = time.monotonic()
        point = StartPoint(self.last_entry, self.state, self.history, self.snapshot)
        if self.race is not None:
            lanes = tuple(
                LaneStart(
                    self.lane_histories[lane.state.id], self.lane_snapshots.get(lane.state.id)
                )
                for lane in self.race.lanes
            )
            point = StartPoint(
                self.last_entry, self.state, lanes[0].history, None, self.race, lanes
            )
        self.redis.set(START, dump(point)[FIELD])

    def close(self) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(HEARTBEAT)
        self.redis.close()


def run_trainer(settings: Any, url: str) -> None:
    """`backprop-live trainer --redis URL`: the one trainer, until SIGTERM or SIGINT (it saves
    the run first). ``settings`` is a :class:`server.trainer.worker.TrainerSettings`."""
    from engine.data.mnist import load_dataset
    from server.trainer.recorder import Recorder
    from server.trainer.worker import Worker

    link = TrainerLink(url)
    link.stop_on_signals()
    dataset = load_dataset(settings.data_dir)
    worker = Worker(dataset, Recorder(settings.state_dir, dataset), link)
    log.info("the trainer is serving %s", url)
    try:
        worker.serve(link)
    finally:
        worker.recorder.close()
        link.close()
