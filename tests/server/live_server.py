"""Helpers for the integration tests: `backprop-live serve` in a subprocess on a free port,
with its own state directory, a known token and the built-in sample data; websocket readers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

TOKEN = "test-presenter-token"
STARTUP_TIMEOUT = 60.0
# Every test client shares 127.0.0.1, so the servers of tests about something else lift the
# viewers' limits; tests/server/test_limits.py starts servers with them.
# Test servers lift the limits (tests/server/test_limits.py starts its own with them) and trust
# X-Forwarded-For from loopback, so that one test can speak as many devices in a room.
NO_LIMITS = (
    *("--classify-limit", "off", "--explain-limit", "off", "--trace-limit", "off"),
    *("--download-limit", "off", "--connect-limit", "off"),
    *("--forwarded-allow-ips", "127.0.0.1"),
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    """A running server process and clients for it."""

    state_dir: Path
    port: int
    process: subprocess.Popen[str]
    log_path: Path
    token: str = TOKEN
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=60.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A presenter request."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.control(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    def fresh_run(self, **config: Any) -> dict[str, Any]:
        """A new idle run with ``config`` (small defaults that train fast)."""
        return self.ok("POST", "/api/run", json={"epochs": 2, **config})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(
    state_dir: Path, tmp: Path, port: int | None = None, flags: Sequence[str] = NO_LIMITS
) -> LiveServer:
    """Start `backprop-live serve` (on ``port``, else a free one) with ``flags``; wait for
    /api/health."""
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LIVE_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")  # only the built-in sample: fast, fixed
    env["PYTHONUNBUFFERED"] = "1"
    port = port or free_port()
    log_path = tmp / f"server-{port}.log"
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    command += ["--token", TOKEN, "--state-dir", str(state_dir), *flags]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, text=True
        )
    server = LiveServer(state_dir, port, process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{server.log()}")
        try:
            if server.http.get("/api/health").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    pytest.fail(
        f"the server did not answer /api/health within {STARTUP_TIMEOUT} s:\n{server.log()}"
    )


class Stream:
    """A websocket client that records every frame it receives."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []

    async def next(self, timeout: float = 30.0) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def until(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        """Read frames until one satisfies ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.1, deadline - time.monotonic()))
            if predicate(frame):
                return frame

    async def quiet_for(self, seconds: float) -> list[dict[str, Any]]:
        """Every frame that arrives within ``seconds``."""
        received = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                received.append(await self.next(left))
            except asyncio.TimeoutError:
                break
        return received

    def batch_indices(self, run: str | None = None) -> list[int]:
        return [
            frame["first_batch"] + i
            for frame in self.frames
            if frame["type"] == "batches" and (run is None or frame["run"] == run)
            for i in range(len(frame["costs"]))
        ]


async def connect(server: LiveServer, **kwargs: Any) -> Stream:
    """A websocket connection, past its hello frame (which is recorded)."""
    connection = await websockets.connect(server.ws_url, max_size=2**24, **kwargs)
    stream = Stream(connection)
    hello = await stream.next()
    assert hello["type"] == "hello"
    return stream


def status_is(*statuses: str) -> Any:
    return lambda frame: frame["type"] == "status" and frame["run"]["status"] in statuses
