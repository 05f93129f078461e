"""A restarted server carries on with the same run; a damaged state file never stops it."""

from __future__ import annotations

import asyncio
import signal

from live_server import LiveServer, connect


def hello_history(server: LiveServer, batches: int) -> dict:
    """The history in a hello, once the server's stream has caught up with ``batches``
    (it lags training by up to a tick)."""

    async def hello() -> dict:
        for _ in range(100):
            stream = await connect(server)
            await stream.connection.close()
            history = stream.frames[0]["history"]
            if history["next_batch"] >= batches:
                return history
            await asyncio.sleep(0.05)
        raise AssertionError(f"the history never reached batch {batches}: {history}")

    return asyncio.run(hello())


def test_restart_restores_the_model_paused(server_factory, tmp_path) -> None:
    state = tmp_path / "state"
    first: LiveServer = server_factory(state)
    first.fresh_run(hidden=[24], epochs=5, batch_size=500)
    first.ok("PATCH", "/api/run", json={"speed": 50})
    first.ok("POST", "/api/run/start")
    first.ok("POST", "/api/run/step")  # pauses, trains one more, saves on the way
    paused = first.ok("POST", "/api/run/pause")
    model = first.http.get("/api/model").json()
    history = hello_history(first, paused["batch"])
    assert history["next_batch"] == paused["batch"] > 0
    first.stop(signal.SIGKILL)  # no chance to save anything on the way out

    second: LiveServer = server_factory(state)
    restored = second.http.get("/api/run").json()
    assert restored["status"] == "paused"
    assert (restored["id"], restored["batch"]) == (paused["id"], paused["batch"])
    assert restored["config"]["hidden"] == [24]
    assert restored["speed"] == 50
    assert second.http.get("/api/model").json() == model
    assert hello_history(second, paused["batch"]) == history  # the cost chart survives too
    assert second.ok("POST", "/api/run/step")["batch"] == paused["batch"] + 1


def test_a_corrupt_state_file_is_set_aside(server_factory, tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "run.npz").write_bytes(b"PK\x03\x04 this is not a checkpoint")
    live: LiveServer = server_factory(state)
    run = live.http.get("/api/run").json()
    assert (run["status"], run["batch"]) == ("idle", 0)
    aside = list(state.glob("run.npz.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes().startswith(b"PK\x03\x04 this is not")
    assert "could not be read" in live.log()
