"""A restarted server carries on with the same run; a damaged state file never stops it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

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


def trainer_pid(server: LiveServer) -> int:
    """The trainer process: the web process's child started by multiprocessing's spawn."""
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in command and b"resource_tracker" not in command:
                return int(child)
    raise AssertionError("the server has no trainer process")


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "Z" in status_letter(pid):
            return True
        time.sleep(0.05)
    return False


def status_letter(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return "Z"


def test_a_trainer_that_dies_is_started_again_and_resumes_the_run(server_factory) -> None:
    live: LiveServer = server_factory()
    run = live.fresh_run(hidden=[8], batch_size=500)
    for _ in range(3):
        live.ok("POST", "/api/run/step")
    live.ok("POST", "/api/run/pause")  # the pause waits until the run is on disk
    os.kill(trainer_pid(live), signal.SIGKILL)
    assert live.http.get("/api/run").status_code == 200  # the pages go on meanwhile
    deadline = time.monotonic() + 60
    while (response := live.control("POST", "/api/run/step")).status_code == 503:
        assert "try again" in response.json()["detail"]
        assert time.monotonic() < deadline, "the trainer was not started again"
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["batch"]) == (run["id"], 4)
    assert "starting it again" in live.log()


def test_the_trainer_leaves_with_the_web_process(server_factory) -> None:
    live: LiveServer = server_factory()
    trainer = trainer_pid(live)
    live.stop(signal.SIGKILL)
    assert gone(trainer, within=20), "the trainer outlived the web process"
