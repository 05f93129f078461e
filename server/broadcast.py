"""Fan-out: what the trainer reports, sent on to every websocket client.

The thread that reads the trainer's reports only appends to an inbox (``publish_*``); the event
loop drains it at most every ``TICK`` seconds into shared, bounded state:

- the batch records of the current run (during a race: of every lane, one :class:`Stream`
  each), from which each client has a cursor per stream (the next batch index it has not been
  sent). A client gets everything from its cursor to the newest batch in one coalesced frame,
  so a client that keeps reading sees every index once, in order, however fast training runs.
  Records older than ``BACKLOG`` batches are forgotten; a client whose cursor falls behind them
  is disconnected (its browser reconnects and starts from a hello);
- the latest snapshot (per lane), encoded once, sent to each client at most every
  ``SNAPSHOT_INTERVAL`` (longer when snapshots are big and viewers many: see
  :meth:`Broadcaster.snapshot_interval`);
- the latest status frame, rebuilt when the run's status or the number of viewers changes;
- the latest ``explain`` and ``gallery`` frames, each encoded once and sent to every client
  that has not had it (including every client that connects).

Each client has its own task that sends and awaits the socket; a slow client only holds up
itself, and one that stops reading altogether stops answering uvicorn's keepalive pings and is
disconnected by it (``serve`` sets the interval). Frames are encoded once per distinct content
and shared by every client that needs them. Per tick and client the loop does one wake-up and a
few socket writes, no tasks or timers: that is what keeps a hundred viewers cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from server.frames import (
    SNAPSHOT_INTERVAL,
    ExplainFrame,
    GalleryFrame,
    HistoryFrame,
    SnapshotFrame,
    batch_frames,
    config_model,
    encode,
    hello_frame,
    status_frame,
)
from server.history import History
from server.trainer.protocol import BatchRecord, RaceState
from server.view import RunView, race_dict

log = logging.getLogger(__name__)

TICK = 0.1  # seconds between drains of the inbox: batches frames are at most 10 per second
SNAPSHOT_BYTES_PER_SECOND = 20_000_000  # across all clients; beyond it snapshots are spaced out
BACKLOG = 20_000  # batch records kept for clients that fall behind (~12 MB; 6 s at full speed)
MAX_BATCHES_PER_FRAME = 5_000
CLOSE_TIMEOUT = 10.0
CLOSE_TOO_SLOW = 4001  # websocket close code: the client fell too far behind
RESUME_WAIT = 2.0  # seconds a resuming client may wait for this process to catch up


class TooFarBehind(Exception):
    pass


@dataclass(frozen=True)
class Resume:
    """Where a reconnecting client was: the run it followed and the next batch it waits for."""

    run: str
    next_batch: int


@dataclass(eq=False)
class Stream:
    """One run's frames: the single run's, or one lane's of a race. ``records`` start at batch
    index ``first_kept``; ``announced_history`` is what a client that was there is told."""

    run: str
    history: History
    announced_history: HistoryFrame
    first_kept: int
    records: list[BatchRecord] = field(default_factory=list)
    snapshot: SnapshotFrame | None = None
    snapshot_text: str = ""
    snapshot_version: int = 0

    @classmethod
    def starting(cls, run: str, history: History) -> Stream:
        return cls(run, history, history.frame(), history.next_batch)

    @property
    def next_batch(self) -> int:
        return self.first_kept + len(self.records)


@dataclass
class Place:
    """Where a client is in one stream: the next batch index it gets, and the snapshot it was
    sent last."""

    cursor: int
    snapshot_version: int = -1
    snapshot_sent_at: float = -math.inf  # loop time


@dataclass(eq=False)
class Client:
    """One websocket and where it is in each stream."""

    websocket: WebSocket
    generation: int = -1  # the announcement of the run it follows (see Broadcaster._announce)
    places: list[Place] = field(default_factory=list)  # one per stream
    status_version: int = -1
    explain_version: int = 0
    gallery_version: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Broadcaster:
    """Carries the run's frames from the worker thread to every connected client."""

    def __init__(self, view: RunView) -> None:
        self.view = view
        self.clients: set[Client] = set()
        self.generation = 0
        self.streams: list[Stream] = []  # the run's, or every lane's of a race
        self.race: RaceState | None = None  # the race the streams are the lanes of
        self.status_text = ""
        self.status_version = 0
        self.explain_text = ""  # the walk-through's latest place (server.frames.explain_frame)
        self.explain_version = 0
        self.gallery_text = ""  # the room's drawings as last read (server.frames.gallery_frame)
        self.gallery_version = 0
        self.share_explain: Callable[[ExplainFrame], None] | None = None  # server.shared
        self._inbox: deque[tuple[str, Any]] = deque()
        self._wakeup_requested = False
        self._drain_handle: asyncio.TimerHandle | None = None
        self._kick_handle: asyncio.Handle | None = None
        self._kick_due = 0.0  # loop time
        self._last_drain = 0.0
        self._status_dirty = False
        self._frame_cache: OrderedDict[tuple[str, int, int], list[str]] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the server's event loop (call it from the loop, at startup)."""
        self._loop = loop
        self._changed = asyncio.Event()

    @property
    def viewers(self) -> int:
        return len(self.clients)

    @property
    def run(self) -> str | None:
        """The run the streams follow (during a race: lane 0's)."""
        return self.streams[0].run if self.streams else None

    # The worker thread's side: append and return

    def publish_run(self, run: str, history: History) -> None:
        """A new run (or a restored one), with its cost chart so far (a copy we may keep)."""
        self._post("run", (run, history))

    def publish_race(self, race: RaceState, histories: list[History]) -> None:
        """A new or reset race, with each lane's cost chart so far."""
        self._post("race", (race, histories))

    def publish_batches(self, records: list[BatchRecord]) -> None:
        self._post("batches", records)

    def publish_snapshot(self, snapshot: SnapshotFrame) -> None:
        self._post("snapshot", snapshot)

    def publish_status(self) -> None:
        self._post("status", None)

    def publish_explain(self, frame: ExplainFrame) -> None:
        """The presenter's place in the walk-through; every client gets the latest. With
        several web processes (``share_explain`` set) it goes to them all, this one included,
        and comes back through :meth:`take_explain`."""
        if self.share_explain is not None:
            self.share_explain(frame)
        else:
            self.take_explain(frame)

    def take_explain(self, frame: ExplainFrame) -> None:
        self._post("explain", frame)

    def publish_gallery(self, frame: GalleryFrame) -> None:
        """The room's drawings as the network reads them; every client gets the latest."""
        self._post("gallery", frame)

    def _post(self, kind: str, payload: Any) -> None:
        self._inbox.append((kind, payload))
        if not self._wakeup_requested and self._loop is not None:
            self._wakeup_requested = True
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                self._loop.call_soon_threadsafe(self._on_wakeup)

    # The event loop's side

    def _on_wakeup(self) -> None:
        self._wakeup_requested = False
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        """Drain soon, but no more often than every ``TICK``: many batches, one frame."""
        if self._drain_handle is not None or self._loop is None:
            return
        delay = max(0.0, self._last_drain + TICK - self._loop.time())
        self._drain_handle = self._loop.call_later(delay, self._drain)

    def _drain(self) -> None:
        self._drain_handle = None
        assert self._loop is not None
        self._last_drain = self._loop.time()
        while self._inbox:
            kind, payload = self._inbox.popleft()
            try:
                self._take(kind, payload)
            except Exception:  # one frame that cannot be encoded must not stop the stream
                log.exception("dropped a %s frame that could not be encoded", kind)
        for stream in self.streams:
            if len(stream.records) > BACKLOG + BACKLOG // 4:
                forget = len(stream.records) - BACKLOG
                del stream.records[:forget]
                stream.first_kept += forget
        if self._status_dirty:
            self._status_dirty = False
            run, race = self.view.run_dict(), self.view.race
            race_body = None if race is None else race_dict(race)
            self.status_text = encode(status_frame(run, run["message"], self.viewers, race_body))
            self.status_version += 1
        self._notify()

    def _take(self, kind: str, payload: Any) -> None:
        if kind == "batches":
            streams = self.streams
            for record in payload:
                stream = streams[record.lane or 0] if (record.lane or 0) < len(streams) else None
                if stream is not None and record.run == stream.run:
                    stream.records.append(record)
                    stream.history.add(record)
        elif kind == "snapshot":
            self._take_snapshot(payload)
        elif kind == "status":
            self._status_dirty = True
        elif kind == "explain":
            self.explain_text = encode(payload)
            self.explain_version += 1
        elif kind == "gallery":
            self.gallery_text = encode(payload)
            self.gallery_version += 1
        elif kind == "run":
            run, history = payload
            self._announce([Stream.starting(run, history)], None)
        elif kind == "race":
            race, histories = payload
            streams = [
                Stream.starting(lane.state.id, history)
                for lane, history in zip(race.lanes, histories)
            ]
            self._announce(streams, race)

    def _announce(self, streams: list[Stream], race: RaceState | None) -> None:
        """A new, reset, loaded or resumed run (a resumed one may keep its id), or a new race:
        every client starts it again from a hello, with the charts the runs have so far. The
        streams have no snapshot yet: a hello waits for the new networks', due in the same
        tick."""
        self.streams = streams
        self.race = race
        self.generation += 1
        self._frame_cache.clear()

    def _take_snapshot(self, snapshot: SnapshotFrame) -> None:
        lane = snapshot["lane"] or 0
        if lane >= len(self.streams) or snapshot["run"] != self.streams[lane].run:
            return
        stream = self.streams[lane]
        stream.snapshot = snapshot
        stream.snapshot_text = encode(snapshot)
        stream.snapshot_version += 1

    def _notify(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def _kick_at(self, due: float) -> None:
        """Wake every client at loop time ``due`` at the latest.

        A client that skips a snapshot to keep to its interval asks for this with the time its
        interval is up; nothing else may come (a paused run makes no more snapshots). Woken, it
        takes the snapshot, or, if it is still early (its interval grew with the viewers), asks
        again for its new time. So every skipped snapshot has a wake-up pending until it is
        sent, and one timer serves every client: the earliest time asked for.
        """
        assert self._loop is not None
        if self._kick_handle is not None:
            if self._kick_due <= due:
                return
            self._kick_handle.cancel()
        # Not the handle's when(): uvloop answers a time already past with a plain Handle.
        self._kick_due = due
        self._kick_handle = self._loop.call_at(due, self._kick)

    def _kick(self) -> None:
        self._kick_handle = None
        self._notify()

    def _viewers_changed(self) -> None:
        self._status_dirty = True
        self._schedule_drain()

    def snapshot_interval(self) -> float:
        """Seconds between one client's snapshots: 0.1, or longer when snapshots times viewers
        would exceed the byte budget (a 4x512 network's snapshot is about a megabyte)."""
        snapshot_bytes = sum(len(stream.snapshot_text) for stream in self.streams)
        budget = snapshot_bytes * self.viewers / SNAPSHOT_BYTES_PER_SECOND
        return max(SNAPSHOT_INTERVAL, budget)

    # One client

    async def serve(self, websocket: WebSocket, resume: Resume | None = None) -> None:
        """Stream frames to an accepted ``websocket`` until it goes away. A client that
        ``resume`` s where this process still has its batches (any process following the same
        trainer has the same ones) gets no hello: the batches from its ``next_batch`` on, then
        the status and the latest snapshot; otherwise a hello."""
        client = Client(websocket)
        self.clients.add(client)
        self._viewers_changed()
        receiver = None
        try:
            hello = await self._hello(client)
            if resume is not None:
                await self._catch_up(resume)
            if not self._resume(client, resume):
                await self._send(client, hello)
            client.task = asyncio.create_task(self._pump(client))
            receiver = asyncio.create_task(self._discard_incoming(websocket))
            await asyncio.wait({client.task, receiver}, return_when=asyncio.FIRST_COMPLETED)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            self.clients.discard(client)
            self._viewers_changed()
            for task in (client.task, receiver):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _hello(self, client: Client) -> str:
        """The hello frame; the client's batches continue right after its history.

        The run it describes is the view's, which hears of a new run up to a tick before the
        broadcaster does: until then, the history and the network here are the old run's, and
        a hello made of both would mix two runs. So it waits for them to agree.
        """
        while not self._announced() or self.view.run_dict()["id"] != self.run:
            assert self._changed is not None  # the tick after startup or a new run, at most
            await self._changed.wait()
        return self._hello_text(client, [stream.history.frame() for stream in self.streams])

    async def _catch_up(self, resume: Resume) -> None:
        """Wait (a little) until this process has the batches before ``resume``: a client
        whose process died may have been a few batches ahead of this one."""
        assert self._loop is not None
        deadline = self._loop.time() + RESUME_WAIT
        while (stream := self._resumable(resume)) is not None and (
            stream.next_batch < resume.next_batch
        ):
            assert self._changed is not None
            left = deadline - self._loop.time()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def _resumable(self, resume: Resume) -> Stream | None:
        """The stream a client that was at ``resume`` can carry on in: a single run's. (A
        race's page starts again from a hello, which holds every lane's chart.)"""
        if len(self.streams) != 1 or self.streams[0].run != resume.run:
            return None
        return self.streams[0]

    def _resume(self, client: Client, resume: Resume | None) -> bool:
        """Continue ``client`` from ``resume`` if the batches it missed are all here."""
        stream = None if resume is None else self._resumable(resume)
        if resume is None or stream is None:
            return False
        if not stream.first_kept <= resume.next_batch <= stream.next_batch:
            return False
        client.places = [Place(resume.next_batch)]
        client.status_version = -1  # the status, then the latest snapshot, as after a hello
        return True

    def _announced(self) -> bool:
        """Whether every stream has its network's snapshot (a hello needs them)."""
        return bool(self.streams) and all(stream.snapshot is not None for stream in self.streams)

    def _hello_text(self, client: Client, histories: list[HistoryFrame]) -> str:
        """A hello with ``histories`` (one per stream); the client's batches continue right
        after them, and every stream's latest snapshot follows."""
        first = self.streams[0].snapshot
        assert first is not None
        client.generation = self.generation
        client.places = [Place(history["next_batch"]) for history in histories]
        client.status_version = self.status_version
        run = self.view.run_dict()
        race = None if self.race is None else self._hello_race(self.race, histories)
        return encode(hello_frame(run, first, histories[0], self.viewers, race))

    def _hello_race(self, race: RaceState, histories: list[HistoryFrame]) -> dict[str, Any]:
        """GET /api/race with every lane's history and model. The race's progress is the
        view's latest (the streams' race may be older); the lanes are the streams'."""
        current = self.view.race
        body = race_dict(current if current is not None and current.id == race.id else race)
        for lane, stream, history in zip(body["lanes"], self.streams, histories):
            assert stream.snapshot is not None
            lane["history"] = history
            lane["model"] = config_model(stream.snapshot, lane["config"])
        return body

    async def _discard_incoming(self, websocket: WebSocket) -> None:
        """Clients have nothing to say; read and drop what they send, to notice them leave."""
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    async def _pump(self, client: Client) -> None:
        assert self._changed is not None
        try:
            while True:
                changed = self._changed
                texts = self._pending(client)
                for text in texts:
                    await self._send(client, text)
                if not (texts and self._behind(client)):
                    await changed.wait()
        except TooFarBehind:
            log.info("a websocket client fell too far behind; disconnecting it")
            await self._close(client, CLOSE_TOO_SLOW, "fell too far behind; reconnect")
        except (WebSocketDisconnect, OSError, RuntimeError):
            await self._close(client, 1011, "not reading")
        except Exception:  # a bug here would otherwise end the client's stream unseen
            log.exception("stopped streaming to a websocket client")
            await self._close(client, 1011, "server error; reconnect")

    def _behind(self, client: Client) -> bool:
        return client.generation == self.generation and any(
            place.cursor < stream.next_batch for place, stream in zip(client.places, self.streams)
        )

    def _pending(self, client: Client) -> list[str]:
        """The frames ``client`` has not had yet (a snapshot only once its interval is up)."""
        texts: list[str] = []
        if client.generation != self.generation:
            if not self._announced():
                return texts  # a hello waits for the new runs' snapshots, due in the same tick
            announced = [stream.announced_history for stream in self.streams]
            texts.append(self._hello_text(client, announced))
        for place, stream in zip(client.places, self.streams):
            start = place.cursor - stream.first_kept
            if start < 0:
                raise TooFarBehind
            end = min(len(stream.records), start + MAX_BATCHES_PER_FRAME)
            if end > start:
                texts += self._batch_texts(stream, start, end)
                place.cursor = stream.first_kept + end
        if client.status_version != self.status_version:
            client.status_version = self.status_version
            texts.append(self.status_text)
        if client.explain_version != self.explain_version:
            client.explain_version = self.explain_version
            texts.append(self.explain_text)
        if client.gallery_version != self.gallery_version:
            client.gallery_version = self.gallery_version
            texts.append(self.gallery_text)
        for place, stream in zip(client.places, self.streams):
            if place.snapshot_version == stream.snapshot_version:
                continue
            assert self._loop is not None
            now = self._loop.time()
            # 10% slack: a snapshot made every interval must not miss its tick by a hair.
            due = place.snapshot_sent_at + 0.9 * self.snapshot_interval()
            if now >= due:
                place.snapshot_version = stream.snapshot_version
                place.snapshot_sent_at = now
                texts.append(stream.snapshot_text)
            else:
                self._kick_at(due)
        return texts

    def _batch_texts(self, stream: Stream, start: int, end: int) -> list[str]:
        """Encoded frames for the stream's records[start:end], shared by clients at the same
        position."""
        key = (stream.run, stream.first_kept + start, stream.first_kept + end)
        texts = self._frame_cache.get(key)
        if texts is None:
            texts = [encode(frame) for frame in batch_frames(stream.records[start:end])]
            self._frame_cache[key] = texts
            if len(self._frame_cache) > 32:
                self._frame_cache.popitem(last=False)
        return texts

    async def _send(self, client: Client, text: str) -> None:
        await client.websocket.send_text(text)

    async def _close(self, client: Client, code: int, reason: str) -> None:
        websocket = client.websocket
        if websocket.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code, reason), CLOSE_TIMEOUT)
