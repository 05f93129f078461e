"""Websocket clients that misbehave cost the others nothing."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import websockets
from live_server import LiveServer, Stream, connect, status_is


def test_clients_that_send_junk_or_vanish_do_not_disturb_the_stream(server: LiveServer) -> None:
    run = server.fresh_run(epochs=2, batch_size=20)
    server.ok("PATCH", "/api/run", json={"speed": None})

    async def scenario() -> None:
        watcher = await connect(server)
        chatty = await websockets.connect(server.ws_url)
        await chatty.send("hello server")
        await chatty.send(b"\x00\x01binary")
        silent = await websockets.connect(server.ws_url, max_queue=1)
        vanishing = await websockets.connect(server.ws_url)
        server.ok("POST", "/api/run/start")
        await chatty.send("x" * 1000)
        vanishing.transport.abort()  # gone without a closing handshake
        chatty.transport.abort()
        await watcher.until(status_is("finished"))
        assert watcher.batch_indices(run["id"]) == list(range(2 * run["batches_per_epoch"]))
        silent.transport.abort()
        await watcher.until(lambda frame: frame["type"] == "status" and frame["viewers"] == 1)
        await watcher.connection.close()

    asyncio.run(scenario())
    assert server.http.get("/api/health").status_code == 200


def test_a_late_joiner_gets_the_history_then_the_live_batches(server: LiveServer) -> None:
    run = server.fresh_run(epochs=3, batch_size=100)
    server.ok("PATCH", "/api/run", json={"speed": 100})

    async def scenario() -> None:
        server.ok("POST", "/api/run/start")
        await asyncio.sleep(0.5)
        late = await connect(server)
        history = late.frames[0]["history"]
        assert history["first_batch"] == 0
        assert history["stride"] == 1
        assert len(history["costs"]) == history["next_batch"]
        await late.until(status_is("finished"))
        assert late.batch_indices(run["id"]) == list(
            range(history["next_batch"], 3 * run["batches_per_epoch"])
        )
        await late.connection.close()

    asyncio.run(scenario())


VIEWERS = 20
ROUNDS = 30
COMMANDS = (
    ("POST", "/api/run/start", None),
    ("POST", "/api/run/pause", None),
    ("POST", "/api/run/step", None),
    ("POST", "/api/teach", {"index": 3, "lr": 0.5}),
    ("PATCH", "/api/run", {"lr": 2.5}),
    ("PATCH", "/api/run", {"lr": 3.0}),
    ("POST", "/api/run/reset", None),
)


def shown(stream: Stream) -> tuple[Any, ...]:
    """What the latest frames ``stream`` has read show: the network's run and batch count (of
    its latest snapshot), the run's status and learning rate (of its latest status)."""
    snapshots = [frame for frame in stream.frames if frame["type"] == "snapshot"]
    statuses = [frame["run"] for frame in stream.frames if frame["type"] in ("hello", "status")]
    network = (snapshots[-1]["run"], snapshots[-1]["batch"]) if snapshots else None
    return network, statuses[-1]["status"], statuses[-1]["config"]["lr"]


def state_of(run: dict[str, Any]) -> tuple[Any, ...]:
    return (run["id"], run["batch"]), run["status"], run["config"]["lr"]


def test_every_viewer_sees_every_change_however_fast_they_come(server: LiveServer) -> None:
    """Bursts of presenter commands in random order, each ending on a step, with a viewer
    joining just before it: every one of many viewers comes to show the state the burst left,
    with no later change to carry them there."""
    server.fresh_run(hidden=[16], batch_size=50, epochs=1000)
    choice = random.Random(4)

    async def read(stream: Stream) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await stream.next(timeout=3600)

    async def scenario() -> list[list[tuple[Any, ...]]]:
        viewers = [await connect(server) for _ in range(VIEWERS)]
        readers = [asyncio.create_task(read(viewer)) for viewer in viewers]
        behind = []
        for _ in range(ROUNDS):
            for method, path, body in choice.choices(COMMANDS, k=choice.randint(1, 6)):
                await asyncio.to_thread(server.ok, method, path, json=body)
            # A viewer that joins between two changes takes its first snapshot out of step
            # with everyone else's.
            await asyncio.to_thread(server.ok, "POST", "/api/run/step")
            viewers.append(await connect(server))
            readers.append(asyncio.create_task(read(viewers[-1])))
            run = await asyncio.to_thread(server.ok, "POST", "/api/run/step")
            deadline = time.monotonic() + 10  # a guard against hanging, not a measure of speed
            while time.monotonic() < deadline:
                if all(shown(viewer) == state_of(run) for viewer in viewers):
                    break
                await asyncio.sleep(0.02)
            behind.append([shown(v) for v in viewers if shown(v) != state_of(run)])
        for viewer, reader in zip(viewers, readers):
            await viewer.connection.close()
            await reader
        return behind

    assert asyncio.run(scenario()) == [[]] * ROUNDS
