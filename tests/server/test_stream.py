"""Websocket clients that misbehave cost the others nothing."""

from __future__ import annotations

import asyncio

import websockets
from live_server import LiveServer, connect, status_is


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
