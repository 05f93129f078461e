"""One run, several web processes: a trainer and web processes following it through a real
redis-server (``backprop-live trainer --redis``, ``serve --redis``)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_server import NO_LIMITS, LiveServer, Stream, connect, start_server, status_is
from redis_setup import RedisProcess, TrainerProcess, start_redis, start_trainer


@dataclass
class Hall:
    """Redis, the trainer and two web processes, ``a`` and ``b``."""

    redis: RedisProcess
    trainer: TrainerProcess
    a: LiveServer
    b: LiveServer
    state_dir: Path
    tmp: Path

    def web(self) -> LiveServer:
        """One more web process following the trainer."""
        return start_server(self.state_dir, self.tmp, flags=[*NO_LIMITS, "--redis", self.redis.url])


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hall]:
    tmp = tmp_path_factory.mktemp("hall")
    redis = start_redis(tmp)
    state_dir = tmp / "state"
    trainer = start_trainer(redis.url, state_dir, tmp)
    flags = [*NO_LIMITS, "--redis", redis.url]
    a = start_server(state_dir, tmp, flags=flags)
    b = start_server(state_dir, tmp, flags=flags)
    hall = Hall(redis, trainer, a, b, state_dir, tmp)
    yield hall
    for web in (hall.a, hall.b):
        web.stop()
    hall.trainer.stop()
    redis.stop()


def slow_run(web: LiveServer, speed: float = 40.0) -> dict[str, Any]:
    """A new run that trains for minutes at ``speed`` mini-batches a second."""
    run = web.fresh_run(epochs=500, batch_size=20)
    web.ok("PATCH", "/api/run", json={"speed": speed})
    return run


async def hello_of(web: LiveServer) -> dict[str, Any]:
    stream = await connect(web)
    await stream.connection.close()
    return stream.frames[0]


def test_every_web_process_shows_the_same_run(hall: Hall) -> None:
    run = hall.a.fresh_run(epochs=3)
    assert hall.b.http.get("/api/run").json()["id"] == run["id"]
    hello_a, hello_b = asyncio.run(hello_of(hall.a)), asyncio.run(hello_of(hall.b))
    assert hello_a["run"]["id"] == hello_b["run"]["id"] == run["id"]
    assert hello_a["model"]["layer_sizes"] == hello_b["model"]["layer_sizes"]


def test_readers_on_both_processes_see_every_batch_once_in_order(hall: Hall) -> None:
    run = hall.a.fresh_run(epochs=3, batch_size=20)
    hall.a.ok("PATCH", "/api/run", json={"speed": None})
    total = 3 * run["batches_per_epoch"]

    async def scenario() -> tuple[list[int], list[int]]:
        on_a, on_b = await connect(hall.a), await connect(hall.b)
        hall.b.ok("POST", "/api/run/start")
        await on_a.until(status_is("finished"))
        await on_b.until(status_is("finished"))
        for stream in (on_a, on_b):
            await stream.connection.close()
        return on_a.batch_indices(run["id"]), on_b.batch_indices(run["id"])

    seen_a, seen_b = asyncio.run(scenario())
    assert seen_a == seen_b == list(range(total))


def test_a_command_through_one_process_reaches_readers_on_the_other(hall: Hall) -> None:
    slow_run(hall.a, speed=5.0)

    async def scenario() -> None:
        on_b = await connect(hall.b)
        hall.a.ok("PATCH", "/api/run", json={"speed": 7.0})
        frame = await on_b.until(lambda f: f["type"] == "status" and f["run"]["speed"] == 7.0)
        assert frame["run"]["status"] == "idle"
        hall.a.ok("POST", "/api/run/start")
        await on_b.until(status_is("running"))
        paused = hall.b.ok("POST", "/api/run/pause")  # and back through the other one
        assert paused["status"] == "paused"
        await on_b.until(status_is("paused"))
        await on_b.connection.close()

    asyncio.run(scenario())
    assert hall.a.http.get("/api/run").json()["status"] == "paused"


def test_commands_from_both_processes_run_once_each_in_order(hall: Hall) -> None:
    slow_run(hall.a)
    for step in range(6):
        web = (hall.a, hall.b)[step % 2]
        state = web.ok("POST", "/api/run/step")
        assert state["batch"] == step + 1  # each step ran once, after the one before
    assert hall.b.http.get("/api/run").json()["batch"] == 6


def test_viewers_on_every_process_follow_the_presenters_walk_through(hall: Hall) -> None:
    hall.a.fresh_run(epochs=3)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        on_b = await connect(hall.b)
        step = {"index": 5, "step": 3}
        sent = await asyncio.to_thread(hall.a.ok, "POST", "/api/explain/step", json=step)
        shown = await on_b.until(lambda f: f["type"] == "explain" and f["key"] == sent["key"])
        late = await connect(hall.b)  # a viewer who arrives now lands on the same step
        joined = await late.until(lambda f: f["type"] == "explain")
        for stream in (on_b, late):
            await stream.connection.close()
        return shown, joined

    shown, joined = asyncio.run(scenario())
    assert shown["step"] == joined["step"] == 3
    assert joined["key"] == shown["key"]
    trace = hall.b.http.get(f"/api/explain/{shown['key']}")  # computed by A, fetched from B
    assert trace.status_code == 200, trace.text
    assert trace.json()["key"] == shown["key"]


def test_killing_a_process_moves_its_readers_to_another_without_a_lost_batch(hall: Hall) -> None:
    doomed = hall.web()
    run = slow_run(hall.a)

    async def scenario() -> list[dict[str, Any]]:
        stream = await connect(doomed)
        hall.a.ok("POST", "/api/run/start")
        await stream.until(lambda f: f["type"] == "batches" and f["first_batch"] > 20)
        doomed.process.send_signal(signal.SIGKILL)
        with pytest.raises(websockets.ConnectionClosed):
            await stream.quiet_for(30)  # what was sent before the end, then the end
        after = stream.batch_indices(run["id"])[-1] + 1
        url = f"{hall.b.ws_url}?run={run['id']}&next={after}"
        moved = Stream(await websockets.connect(url, max_size=2**24))
        first = await moved.next()
        await moved.until(lambda f: f["type"] == "batches" and f["first_batch"] > after + 40)
        await moved.connection.close()
        return [first, *stream.frames, *moved.frames]  # first: also in moved.frames

    frames = asyncio.run(scenario())
    hall.a.ok("POST", "/api/run/pause")
    assert frames[0]["type"] != "hello"  # it continued where it was
    indices = Stream(None)
    indices.frames = frames[1:]
    seen = indices.batch_indices(run["id"])
    assert seen == list(range(seen[0], seen[-1] + 1))
    doomed.stop()


def test_a_reader_a_little_ahead_of_a_process_waits_for_it_to_catch_up(hall: Hall) -> None:
    """A page whose process died may have been ahead of the one it moves to."""
    run = slow_run(hall.a)

    async def scenario() -> list[dict[str, Any]]:
        on_b = await connect(hall.b)
        await asyncio.to_thread(hall.a.ok, "POST", "/api/run/start")
        await on_b.until(lambda f: f["type"] == "batches")
        ahead = on_b.batch_indices()[-1] + 1 + 10  # a quarter of a second ahead of b
        url = f"{hall.b.ws_url}?run={run['id']}&next={ahead}"
        moved = Stream(await websockets.connect(url, max_size=2**24))
        await moved.until(lambda f: f["type"] == "batches")
        for stream in (on_b, moved):
            await stream.connection.close()
        return [ahead, moved.frames]

    ahead, frames = asyncio.run(scenario())
    hall.a.ok("POST", "/api/run/pause")
    assert frames[0]["type"] != "hello"
    first = next(frame for frame in frames if frame["type"] == "batches")
    assert first["first_batch"] == ahead


def test_a_process_that_fell_behind_what_redis_keeps_starts_its_pages_again(hall: Hall) -> None:
    run = slow_run(hall.a)
    hall.a.ok("POST", "/api/run/start")

    async def scenario() -> Stream:
        on_b = await connect(hall.b)
        await on_b.until(lambda f: f["type"] == "batches")
        hall.b.process.send_signal(signal.SIGSTOP)  # b reads nothing meanwhile
        try:
            at = await asyncio.to_thread(wait_for, hall.a, lambda r: True)
            await asyncio.to_thread(wait_for, hall.a, lambda r: r["batch"] > at["batch"] + 20)
            client = hall.redis.client()
            client.xtrim("backprop-live:reports", maxlen=0, approximate=False)
            client.close()
        finally:
            hall.b.process.send_signal(signal.SIGCONT)
        hello = await on_b.until(lambda f: f["type"] == "hello")
        after = hello["history"]["next_batch"]
        await on_b.until(lambda f: f["type"] == "batches" and f["first_batch"] > after + 20)
        await on_b.connection.close()
        return on_b

    on_b = asyncio.run(scenario())
    hall.a.ok("POST", "/api/run/pause")
    hello = [frame for frame in on_b.frames if frame["type"] == "hello"][-1]
    since = on_b.frames[on_b.frames.index(hello) :]
    following = Stream(None)
    following.frames = since
    seen = following.batch_indices(run["id"])
    assert seen == list(range(hello["history"]["next_batch"], seen[-1] + 1))
    assert "fell behind the trainer's reports" in hall.b.log()


def test_a_reader_that_asks_for_batches_no_process_has_gets_a_hello(hall: Hall) -> None:
    run = hall.a.fresh_run(epochs=3)

    async def scenario() -> dict[str, Any]:
        url = f"{hall.b.ws_url}?run={run['id']}&next=999999"
        async with websockets.connect(url, max_size=2**24) as connection:
            return json.loads(await connection.recv())

    assert asyncio.run(scenario())["type"] == "hello"


def test_both_sides_carry_on_after_redis_restarts(hall: Hall) -> None:
    run = slow_run(hall.a)
    hall.a.ok("POST", "/api/run/start")
    wait_for(hall.b, lambda r: r["batch"] >= 5)
    hall.redis.stop()
    refused = hall.a.control("PATCH", "/api/run", json={"speed": 30.0})
    assert refused.status_code == 503, refused.text
    hall.redis = start_redis(hall.tmp, hall.redis.port)  # empty: nothing was saved

    async def scenario() -> None:
        on_b = await connect(hall.b)
        assert on_b.frames[0]["run"]["id"] == run["id"]
        await on_b.until(lambda f: f["type"] == "batches")
        first = on_b.batch_indices()[0]
        await on_b.until(lambda f: f["type"] == "batches" and f["first_batch"] > first + 20)
        await on_b.connection.close()
        assert on_b.batch_indices() == list(range(first, on_b.batch_indices()[-1] + 1))

    asyncio.run(scenario())
    hall.a.ok("POST", "/api/run/pause")
    assert hall.b.http.get("/api/run").json()["status"] == "paused"
    for log in (hall.trainer.log(), hall.a.log()):
        assert "redis unreachable" in log
        assert "redis is back" in log


def test_a_restarted_trainer_resumes_its_run_and_the_processes_say_it_was_offline(
    hall: Hall,
) -> None:
    run = slow_run(hall.a)
    hall.a.ok("POST", "/api/run/start")
    wait_for(hall.a, lambda r: r["batch"] >= 10)
    stopped_at = hall.a.ok("POST", "/api/run/pause")["batch"]
    hall.trainer.stop(signal.SIGKILL)

    async def offline() -> None:
        on_b = await connect(hall.b)
        await on_b.until(lambda f: f["type"] == "status" and "offline" in (f["message"] or ""))
        await on_b.connection.close()

    asyncio.run(offline())
    refused = hall.a.control("POST", "/api/run/start")
    assert refused.status_code == 503, refused.text
    assert "offline" in refused.json()["detail"]
    hall.trainer = start_trainer(hall.redis.url, hall.state_dir, hall.tmp)
    for web in (hall.a, hall.b):
        state = wait_for(web, lambda r: r["message"] is None)
        assert (state["id"], state["batch"], state["status"]) == (run["id"], stopped_at, "paused")
    assert hall.b.ok("POST", "/api/run/step")["batch"] == stopped_at + 1


def wait_for(web: LiveServer, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
    """GET /api/run until ``predicate`` holds of it."""
    deadline = time.monotonic() + timeout
    while True:
        run = web.http.get("/api/run").json()
        if predicate(run) or time.monotonic() > deadline:
            assert predicate(run), run
            return run
        time.sleep(0.05)


def children_of(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def test_workers_start_web_processes_on_one_port_and_a_trainer_when_none_runs(hall: Hall) -> None:
    own_db = hall.redis.url.rsplit("/", 1)[0] + "/1"  # a Redis database with no trainer yet
    flags = [*NO_LIMITS, "--redis", own_db, "--workers", "2"]
    supervisor = start_server(hall.tmp / "workers-state", hall.tmp, flags=flags)
    try:
        children = children_of(supervisor.process.pid)
        assert sum(" trainer " in child for child in children) == 1, children
        assert sum(" serve " in child and "--reuse-port" in child for child in children) == 2
        run = supervisor.fresh_run(epochs=3)
        assert run["id"] != hall.a.http.get("/api/run").json()["id"]  # its own run
        assert asyncio.run(hello_of(supervisor))["run"]["id"] == run["id"]
    finally:
        supervisor.stop()
    assert children_of(supervisor.process.pid) == []


def test_web_processes_started_without_a_token_share_the_first_ones(hall: Hall) -> None:
    from server.trainer.streams import shared_token

    own_db = hall.redis.url.rsplit("/", 1)[0] + "/2"
    assert shared_token(own_db, "first") == "first"
    assert shared_token(own_db, "second") == "first"


def test_a_race_shows_on_every_web_process_even_one_started_during_it(hall: Hall) -> None:
    lanes = [
        {"label": f"batch {size}", "config": {"batch_size": size, "hidden": [8], "epochs": 50}}
        for size in (50, 100)
    ]
    race = hall.a.ok("POST", "/api/race", json={"lanes": lanes})
    hall.b.ok("POST", "/api/run/step")  # through the other process: one round
    while hall.a.ok("GET", "/api/race")["stepping"]:
        pass
    late = hall.web()
    try:
        for web in (hall.a, hall.b, late):
            now = web.ok("GET", "/api/race")
            assert now["id"] == race["id"]
            assert [lane["examples_seen"] for lane in now["lanes"]] == [100, 100]
        hello = asyncio.run(hello_of(late))
        assert hello["race"]["id"] == race["id"]
        assert [lane["history"]["next_batch"] for lane in hello["race"]["lanes"]] == [2, 1]
    finally:
        late.stop()
        hall.a.ok("DELETE", "/api/race")
