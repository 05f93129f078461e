"""The broadcaster in-process, with stand-in sockets: coalescing, and slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import threading

import pytest
from starlette.websockets import WebSocketState

from engine.data.mnist import load_sample
from engine.training import TrainConfig, Trainer
from server import broadcast
from server.broadcast import Broadcaster
from server.frames import snapshot_frame
from server.history import History
from server.trainer.probe import choose_probe
from server.trainer.run import LiveRun


class FakeSocket:
    """Records what it is sent; ``gate`` (when set) holds every send until it opens."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.sent: list[dict] = []
        self.gate = gate
        self.closed: asyncio.Event = asyncio.Event()
        self.close_code: int | None = None
        self.client_state = WebSocketState.CONNECTED

    async def send_text(self, text: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.sent.append(json.loads(text))

    async def receive(self) -> dict:
        await self.closed.wait()
        return {"type": "websocket.disconnect"}

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code
        self.client_state = WebSocketState.DISCONNECTED
        self.closed.set()

    def batch_indices(self) -> list[int]:
        return [
            frame["first_batch"] + i
            for frame in self.sent
            if frame["type"] == "batches"
            for i in range(len(frame["costs"]))
        ]


@pytest.fixture(scope="module")
def trainer_records() -> tuple[dict, list]:
    dataset = load_sample()
    run = LiveRun(Trainer(TrainConfig(hidden=(4,), batch_size=10, epochs=1), dataset), "run")
    probe = choose_probe(dataset)
    snapshot = snapshot_frame(run.snapshot(probe.pixels), probe)
    records = [run.train_one() for _ in range(300)]
    return snapshot, records


async def until(condition, timeout: float = 20.0) -> None:
    """Wait for ``condition()``; fail the test rather than hang."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


class FakeView:
    """The run as the broadcaster reads it (server.view.RunView's run_dict and race)."""

    def __init__(self) -> None:
        self.id = "run"
        self.race = None  # no race is on

    def run_dict(self) -> dict:
        return {
            "id": self.id,
            "status": "running",
            "message": None,
            "config": {"activation": "sigmoid", "loss": "mse"},
        }


async def publish_from_a_thread(hub: Broadcaster, records: list) -> None:
    def worker() -> None:
        for record in records:
            hub.publish_batches([record])

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.to_thread(thread.join)


def test_a_reading_client_gets_every_batch_once_in_few_frames(trainer_records) -> None:
    snapshot, records = trainer_records

    async def scenario() -> FakeSocket:
        hub = Broadcaster(FakeView())
        hub.bind(asyncio.get_running_loop())
        hub.publish_run("run", History())
        hub.publish_snapshot(snapshot)
        socket = FakeSocket()
        serving = asyncio.create_task(hub.serve(socket))
        await until(lambda: socket.sent)
        await publish_from_a_thread(hub, records)
        while len(socket.batch_indices()) < len(records):
            await asyncio.sleep(0.05)
        await socket.close()
        await serving
        assert hub.viewers == 0
        return socket

    socket = asyncio.run(scenario())
    assert socket.sent[0]["type"] == "hello"
    assert socket.batch_indices() == list(range(len(records)))
    batches_frames = [frame for frame in socket.sent if frame["type"] == "batches"]
    assert len(batches_frames) < len(records) / 10  # coalesced, not one frame per batch


def test_a_stalled_client_holds_up_nobody_and_is_closed_when_too_far_behind(
    trainer_records, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot, records = trainer_records
    monkeypatch.setattr(broadcast, "BACKLOG", 60)

    async def scenario() -> tuple[FakeSocket, FakeSocket]:
        hub = Broadcaster(FakeView())
        hub.bind(asyncio.get_running_loop())
        hub.publish_run("run", History())
        hub.publish_snapshot(snapshot)
        gate = asyncio.Event()
        stalled, reader = FakeSocket(gate), FakeSocket()
        tasks = [asyncio.create_task(hub.serve(socket)) for socket in (stalled, reader)]
        await until(lambda: reader.sent)
        gate.set()  # let the stalled client's hello through, then hold it again
        await asyncio.sleep(0.05)
        gate.clear()
        for start in range(0, len(records), 20):  # a tick's worth at a time
            await publish_from_a_thread(hub, records[start : start + 20])
            await asyncio.sleep(broadcast.TICK * 1.5)
        await until(lambda: len(reader.batch_indices()) >= len(records) or reader.closed.is_set())
        gate.set()
        await asyncio.wait_for(stalled.closed.wait(), 10)
        await reader.close()
        await asyncio.gather(*tasks)
        return stalled, reader

    stalled, reader = asyncio.run(scenario())
    assert reader.batch_indices() == list(range(len(records)))
    assert stalled.close_code == broadcast.CLOSE_TOO_SLOW


def test_a_run_announced_again_starts_every_client_over_from_a_hello(trainer_records) -> None:
    """A resumed run keeps its id but goes back in time: clients must not keep their place."""
    snapshot, records = trainer_records

    async def scenario() -> FakeSocket:
        hub = Broadcaster(FakeView())
        hub.bind(asyncio.get_running_loop())
        hub.publish_run("run", History())
        hub.publish_snapshot(snapshot)
        socket = FakeSocket()
        serving = asyncio.create_task(hub.serve(socket))
        await until(lambda: socket.sent)
        await publish_from_a_thread(hub, records[:200])
        await until(lambda: len(socket.batch_indices()) == 200)
        resumed = History()
        for record in records[:100]:
            resumed.add(record)
        hub.publish_run("run", resumed)
        hub.publish_snapshot(snapshot)
        await until(lambda: [f["type"] for f in socket.sent].count("hello") == 2)
        await publish_from_a_thread(hub, records[100:150])
        await until(lambda: len(socket.batch_indices()) == 250)
        await socket.close()
        await serving
        return socket

    socket = asyncio.run(scenario())
    second_hello = [frame for frame in socket.sent if frame["type"] == "hello"][1]
    assert second_hello["history"]["next_batch"] == 100
    after = socket.sent[socket.sent.index(second_hello) :]
    assert after[1]["type"] == "snapshot"  # the picture follows the hello at once
    indices = [
        frame["first_batch"] + i
        for frame in after
        if frame["type"] == "batches"
        for i in range(len(frame["costs"]))
    ]
    assert indices == list(range(100, 150))


def latest_snapshot_batch(socket: FakeSocket) -> int | None:
    batches = [frame["batch"] for frame in socket.sent if frame["type"] == "snapshot"]
    return batches[-1] if batches else None


EPISODES = 10


def test_every_client_ends_on_the_latest_snapshot_however_the_changes_fall(
    trainer_records,
) -> None:
    """Snapshots come faster than a client may take them while clients keep joining (each
    takes its first at once, out of step with the others), then the run stops, as a pause, a
    step or a teach leaves it: every client must end on the last snapshot, with no later frame
    to carry it there. Again and again, with the timings scattered."""
    snapshot, _ = trainer_records
    timing = random.Random(3)

    published = itertools.count(1)

    async def episode(hub: Broadcaster, sockets: list[FakeSocket], tasks: list) -> list:
        for _ in range(30):
            last = next(published)
            hub.publish_snapshot({**snapshot, "batch": last})
            if timing.random() < 0.5:
                sockets.append(FakeSocket())
                tasks.append(asyncio.create_task(hub.serve(sockets[-1])))
            await asyncio.sleep(timing.uniform(0, 0.03))
        # Far longer than an interval: a client left behind stays behind for good.
        with contextlib.suppress(TimeoutError):
            await until(lambda: all(latest_snapshot_batch(s) == last for s in sockets), 5)
        return [latest_snapshot_batch(s) for s in sockets if latest_snapshot_batch(s) != last]

    async def scenario() -> list:
        hub = Broadcaster(FakeView())
        hub.bind(asyncio.get_running_loop())
        hub.publish_run("run", History())
        sockets: list[FakeSocket] = []
        tasks: list = []
        stranded = [await episode(hub, sockets, tasks) for _ in range(EPISODES)]
        for socket in sockets:
            await socket.close()
        await asyncio.gather(*tasks)
        return stranded

    assert asyncio.run(scenario()) == [[]] * EPISODES


def test_a_hello_never_mixes_a_new_run_with_the_old_runs_history(trainer_records) -> None:
    """The view hears of a new run up to a tick before the broadcaster: a client that
    connects then waits for the broadcaster, rather than get the new run's id with the old
    run's cost history and network."""
    snapshot, records = trainer_records

    async def scenario() -> list[dict]:
        view = FakeView()
        hub = Broadcaster(view)
        hub.bind(asyncio.get_running_loop())
        hub.publish_run("run", History())
        hub.publish_snapshot(snapshot)
        await publish_from_a_thread(hub, records[:50])
        await until(lambda: hub.streams[0].history.next_batch == 50)
        view.id = "new"
        socket = FakeSocket()
        serving = asyncio.create_task(hub.serve(socket))
        await asyncio.sleep(3 * broadcast.TICK)
        waited = list(socket.sent)
        hub.publish_run("new", History())
        hub.publish_snapshot({**snapshot, "run": "new"})
        await until(lambda: len(socket.sent) >= 2)
        await socket.close()
        await serving
        return [*waited, *socket.sent]

    hello, first_snapshot = asyncio.run(scenario())[:2]
    assert (hello["type"], hello["run"]["id"]) == ("hello", "new")
    assert hello["history"]["next_batch"] == 0, "the new run's history, not the old one's"
    assert (first_snapshot["type"], first_snapshot["run"]) == ("snapshot", "new")
