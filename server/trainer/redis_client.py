"""A web process's side of a trainer that runs elsewhere, reached through Redis
(:mod:`server.trainer.streams`): the same typed commands as :class:`TrainerClient`, so routes
cannot tell the two apart, and the same reports handed to ``on_report`` in the trainer's order.

One thread reads ``reports``; a command's reply is read after everything the trainer reported
before it, as with the pipes. While the trainer's heartbeat is missing, commands are refused
with 503 at once and the run's status says "trainer offline"; when it comes back it announces
its run, which every page starts again from.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import secrets
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from server.history import History
from server.trainer import streams
from server.trainer.client import TrainerClient
from server.trainer.protocol import (
    COMMAND_TIMEOUT,
    Command,
    RaceChanged,
    RaceState,
    Reply,
    Report,
    Request,
    RunChanged,
    RunState,
    Snapshot,
    StatusChanged,
    Trained,
    TrainerUnavailable,
)
from server.trainer.recorder import no_record
from server.trainer.streams import SnapshotNote, StartPoint
from server.trainer.worker import TrainerSettings

log = logging.getLogger(__name__)

OFFLINE = "trainer offline: training resumes when it is back"
WAIT_LOG_INTERVAL = 10.0  # seconds between "waiting for a trainer" lines at startup
REPORTS_PER_READ = 100
MISSING_BEATS = 2.0  # seconds without a heartbeat key before the trainer counts as offline


class RedisTrainerClient(TrainerClient):
    """The trainer behind Redis at ``url``, seen from one web process."""

    def __init__(
        self,
        settings: TrainerSettings,
        url: str,
        on_report: Callable[[Report], None],
        on_start: Callable[[RunChanged | RaceChanged, list[History]], None],
    ) -> None:
        super().__init__(settings, on_report)
        self.url = url
        self.on_start = on_start  # the run as a starting web process sees it, with its chart
        # Request ids are unique across every web process: replies reach them all.
        self._base_id = secrets.randbits(40) << 20
        self._commands_redis = streams.connect(url)
        self._reader: threading.Thread | None = None
        self._online = False
        self._latest: Report | None = None  # the last report with a state, for "offline"
        self._checked_at = 0.0
        self._missing_since: float | None = None
        self._entry = "0-0"  # the last entry of reports read
        self._next_batch: dict[str, int] = {}  # by run: the index its next mini-batch has

    # The process: there is none here; the trainer runs on its own

    def launch(self) -> None:
        self._reader = threading.Thread(target=self._follow, name="trainer reports", daemon=True)
        self._reader.start()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait for the run's first snapshot, however long the trainer takes to appear."""
        while not self._ready.wait(WAIT_LOG_INTERVAL):
            log.warning("waiting for a trainer: start one with `backprop-live trainer --redis URL`")

    def close(self, timeout: float = 10.0) -> None:
        """Stop reading; the trainer goes on for the other web processes."""
        self._closing = True
        if self._reader is not None:
            self._reader.join(timeout)
        self._commands_redis.close()

    # Commands

    def _call(self, command: Command, timeout: float = COMMAND_TIMEOUT) -> Reply:
        if not self._online:
            raise TrainerUnavailable("the trainer is offline; try again in a moment")
        return super()._call(command, timeout)

    def _request_id(self) -> int:
        return self._base_id + next(self._ids)  # unique across every web process

    def _send(self, request: Request) -> None:
        try:
            self._commands_redis.xadd(
                streams.COMMANDS, streams.dump(request), maxlen=streams.COMMANDS_KEPT
            )
        except redis.RedisError as error:
            raise TrainerUnavailable("redis is unreachable; try again in a moment") from error

    # Reports

    def _follow(self) -> None:
        """The reader thread: from the start point on, every report in order."""
        connection = streams.connect(self.url)
        try:
            streams.retrying("starting", partial(self._start, connection), self._is_closing)
            while not self._closing:
                step = partial(self._follow_once, connection)
                streams.retrying("reading reports", step, self._is_closing)
        except EOFError:  # closing while Redis was away
            pass
        finally:
            connection.close()

    def _follow_once(self, connection: redis.Redis) -> None:
        """Hand on the reports after ``_entry`` (waiting a second for some), and see whether
        the trainer is still there."""
        for entry, fields in self._read_reports(connection, self._entry):
            message = streams.load(fields)
            if self._missed_batches(message):
                log.warning(
                    "fell behind the trainer's reports by more than Redis keeps; "
                    "starting again from the run as it is now"
                )
                self._start(connection)
                return
            self._take(connection, message)
            self._entry = entry.decode()
        self._check_heartbeat(connection)

    def _missed_batches(self, message: Any) -> bool:
        """Whether ``message`` does not follow the mini-batches handed on so far: the entries
        between were trimmed from ``reports`` before this process read them."""
        if isinstance(message, (RunChanged, RaceChanged)):
            self._next_batch = {}  # new charts: they start where the runs now are
        if not isinstance(message, Trained):
            return False
        missed = False
        for record in message.records:  # a race's lanes take turns
            expected = self._next_batch.get(record.run)
            missed = missed or (expected is not None and expected != record.index)
            self._next_batch[record.run] = record.index + 1
        return missed

    def _is_closing(self) -> bool:
        return self._closing

    def _start_point(self, connection: redis.Redis) -> StartPoint | None:
        data: Any = connection.get(streams.START)
        if data is None:
            return None
        point: StartPoint = pickle.loads(data)
        return point

    def _start(self, connection: redis.Redis) -> None:
        """Wait for the trainer's start point, then show the run as of it, as a page would
        see a run announced with that chart."""
        point = self._start_point(connection)
        while point is None and not self._closing:
            time.sleep(0.2)
            point = self._start_point(connection)
        if point is None:
            return
        self._entry = point.entry
        self._online = bool(connection.exists(streams.HEARTBEAT))
        self._latest = StatusChanged(point.state, point.race)
        if point.race is not None:
            self._start_race(point.state, point.race, point.lanes)
            return
        self._next_batch = {point.state.id: point.history.next_batch}
        announcement = RunChanged(point.state, no_record(point.history.next_batch))
        self.on_start(announcement, [point.history])
        if point.snapshot is not None:
            snapshot = self._snapshot(connection, point.snapshot)
            if snapshot is not None and snapshot.run == point.state.id:
                self._hand_on(snapshot)
                self._ready.set()
        log.info("following the trainer's reports through %s", self.url)

    def _start_race(
        self, state: RunState, race: RaceState, lanes: tuple[streams.LaneStart, ...]
    ) -> None:
        """Show the race as of the start point: every lane's chart, then its network."""
        histories = [lane.history for lane in lanes]
        self._next_batch = {
            lane.state.id: history.next_batch for lane, history in zip(race.lanes, histories)
        }
        records = [no_record(history.next_batch) for history in histories]
        self.on_start(RaceChanged(state, race, records), histories)
        for lane in lanes:
            if lane.snapshot is not None:
                self._hand_on(lane.snapshot)
        if all(lane.snapshot is not None for lane in lanes):
            self._ready.set()
        log.info("following the trainer's race through %s", self.url)

    def _read_reports(self, connection: redis.Redis, entry: str) -> list[Any]:
        """The entries after ``entry``: (id, fields) pairs; none after a second's wait."""
        block = int(streams.LONGEST_BLOCK * 1000)
        answer: Any = connection.xread({streams.REPORTS: entry}, REPORTS_PER_READ, block)
        return list(answer[0][1]) if answer else []

    def _snapshot(self, connection: redis.Redis, entry: str) -> Snapshot | None:
        found: Any = connection.xrange(streams.SNAPSHOTS, entry, entry)
        if not found:
            return None  # superseded: a newer one's note follows
        snapshot: Snapshot = streams.load(found[0][1])
        return snapshot

    def _take(self, connection: redis.Redis, message: Any) -> None:
        if isinstance(message, SnapshotNote):
            snapshot = self._snapshot(connection, message.entry)
            if snapshot is not None:
                self._hand_on(snapshot)
                self._ready.set()
            return
        report: Report = message
        if not self._online:
            self._online = True  # it speaks, so it is back
        self._latest = report
        self._hand_on(report)
        if isinstance(report, Reply):
            waiting = self._waiting.get(report.id)
            if waiting is not None:
                waiting.set_result(report)

    def _check_heartbeat(self, connection: redis.Redis) -> None:
        now = time.monotonic()
        if now - self._checked_at < streams.HEARTBEAT_INTERVAL:
            return
        self._checked_at = now
        alive = bool(connection.exists(streams.HEARTBEAT))
        missing_since = None if alive else (self._missing_since or now)
        self._missing_since = missing_since
        if missing_since is not None and now - missing_since < MISSING_BEATS:
            return  # Redis restarted empty a moment ago: the next beat is on its way
        if alive == self._online:
            return
        self._online = alive
        latest = self._latest
        if latest is None or isinstance(latest, Snapshot):
            return
        if alive:
            log.warning("the trainer is back")
            self._hand_on(StatusChanged(latest.state, race_of(latest)))
            return
        log.warning("the trainer is offline (no heartbeat for %d s)", streams.HEARTBEAT_TTL)
        for future in list(self._waiting.values()):
            future.set_exception(TrainerUnavailable("the trainer went offline; try again"))
        offline = dataclasses.replace(latest.state, message=OFFLINE)
        self._hand_on(StatusChanged(offline, race_of(latest)))


def race_of(report: Report) -> RaceState | None:
    """The race as of ``report`` (a run's announcement has none)."""
    return None if isinstance(report, (RunChanged, Snapshot)) else report.race
