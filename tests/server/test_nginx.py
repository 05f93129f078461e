"""deploy/nginx.conf, run for real: Debian's nginx in front of two web processes that follow
one trainer through Redis, as deploy/compose.yaml sets them up (only the addresses differ)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from live_server import NO_LIMITS, LiveServer, Stream, free_port, start_server
from needs import debian_program
from redis_setup import RedisProcess, TrainerProcess, start_redis, start_trainer

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx.conf"
MAIN_CONF = """daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/backprop-live.conf;
}}
"""


def site_conf(port: int, upstreams: list[int]) -> str:
    """deploy/nginx.conf with this machine's addresses in place of compose's."""
    text = NGINX_CONF.read_text()
    replacements = {"listen 80;": f"listen 127.0.0.1:{port};"}
    for name, upstream in zip(("web1", "web2"), upstreams):
        replacements[f"server {name}:8000"] = f"server 127.0.0.1:{upstream}"
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer says {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Proxied:
    redis: RedisProcess
    trainer: TrainerProcess
    webs: list[LiveServer]
    nginx: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_nginx(tmp: Path, port: int, upstreams: list[int]) -> subprocess.Popen[bytes]:
    (tmp / "backprop-live.conf").write_text(site_conf(port, upstreams))
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(MAIN_CONF.format(tmp=tmp, user=user))
    command = [debian_program("nginx", "nginx"), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("nginx did not pass /api/health on")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    tmp = tmp_path_factory.mktemp("nginx")
    redis = start_redis(tmp)
    trainer = start_trainer(redis.url, tmp / "state", tmp)
    flags = [*NO_LIMITS, "--redis", redis.url]
    webs = [start_server(tmp / "state", tmp, flags=flags) for _ in range(2)]
    port = free_port()
    nginx = start_nginx(tmp, port, [web.port for web in webs])
    yield Proxied(redis, trainer, webs, nginx, port)
    nginx.terminate()
    nginx.wait(10)
    for web in webs:
        web.stop()
    trainer.stop()
    redis.stop()


def test_pages_the_api_and_the_stream_pass_through_nginx(proxied: Proxied) -> None:
    host = f"127.0.0.1:{proxied.port}"
    assert httpx.get(proxied.url + "/").status_code == 200
    run = httpx.get(proxied.url + "/api/run").json()

    async def hello() -> dict[str, Any]:
        # A browser's Origin: the server compares it with the Host nginx passes on.
        url = f"ws://{host}/ws"
        async with websockets.connect(url, origin=f"http://{host}", max_size=2**24) as ws:
            stream = Stream(ws)
            return await stream.next()

    frame = asyncio.run(hello())
    assert frame["type"] == "hello"
    assert frame["run"]["id"] == run["id"]


def test_pages_on_a_process_that_dies_reconnect_through_nginx_and_lose_nothing(
    proxied: Proxied,
) -> None:
    web, doomed = proxied.webs
    run = web.fresh_run(epochs=500, batch_size=20)
    web.ok("PATCH", "/api/run", json={"speed": 40.0})
    url = f"ws://127.0.0.1:{proxied.port}/ws"
    goal: list[int] = []  # the batch index every page reads up to, set once one has died
    reconnected: list[int] = []

    async def page() -> Stream:
        """A page: reads, and when its socket closes, reconnects to the same URL saying where
        it was, as static/js/socket.js does."""
        stream = Stream(await websockets.connect(url, max_size=2**24))
        await stream.next()
        while not (goal and stream.batch_indices() and stream.batch_indices()[-1] >= goal[0]):
            try:
                await stream.next()
            except websockets.ConnectionClosed:
                after = stream.batch_indices()[-1] + 1
                reconnected.append(after)
                resume = f"{url}?run={run['id']}&next={after}"
                stream.connection = await websockets.connect(resume, max_size=2**24)
                assert (await stream.next())["type"] != "hello"  # it continued where it was
        await stream.connection.close()
        return stream

    async def scenario() -> list[Stream]:
        pages = [asyncio.create_task(page()) for _ in range(4)]  # least_conn: two on each
        await asyncio.to_thread(web.ok, "POST", "/api/run/start")
        state = await asyncio.to_thread(web.ok, "GET", "/api/run")
        while state["batch"] < 20:
            state = await asyncio.to_thread(web.ok, "GET", "/api/run")
        doomed.process.send_signal(signal.SIGKILL)
        goal.append(state["batch"] + 80)
        return await asyncio.gather(*pages)

    pages = asyncio.run(scenario())
    web.ok("POST", "/api/run/pause")
    assert reconnected, "no page was on the process that was killed"
    for stream in pages:
        seen = stream.batch_indices(run["id"])
        assert seen == list(range(seen[0], seen[-1] + 1))
