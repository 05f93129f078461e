"""Helpers for the tests of several web processes: a real ``redis-server`` on a free port and
``backprop-live trainer --redis`` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from live_server import STARTUP_TIMEOUT, free_port
from needs import debian_program


@dataclass
class RedisProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_redis(tmp: Path, port: int | None = None) -> RedisProcess:
    """redis-server on ``port`` (else a free one), in memory only; waits for PING."""
    port = port or free_port()
    log_path = tmp / f"redis-{port}.log"
    command = [debian_program("redis-server", "redis-server"), "--port", str(port)]
    command += ["--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(tmp)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = RedisProcess(port, process, log_path)
    client = server.client()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"redis-server exited: {log_path.read_text()}")
        try:
            client.ping()
            client.close()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)
    pytest.fail("redis-server did not answer PING")


@dataclass
class TrainerProcess:
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_trainer(redis_url: str, state_dir: Path, tmp: Path) -> TrainerProcess:
    """`backprop-live trainer --redis` on the built-in sample (the env of live_server's
    servers); returns once it has started (its heartbeat is in Redis)."""
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LIVE_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp / "xdg-cache")
    env["PYTHONUNBUFFERED"] = "1"
    log_path = tmp / f"trainer-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "server.cli", "trainer", "--redis", redis_url]
    command += ["--state-dir", str(state_dir)]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, text=True
        )
    trainer = TrainerProcess(process, log_path)
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not client.exists("backprop-live:trainer"):
        if process.poll() is not None or time.monotonic() > deadline:
            trainer.stop(signal.SIGKILL)
            pytest.fail(f"the trainer did not start:\n{trainer.log()}")
        time.sleep(0.05)
    client.close()
    return trainer
