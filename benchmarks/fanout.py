"""Fan-out: does a room full of browsers slow the training down or fall behind it?

Starts a real server on loopback (the full MNIST when it is found, else the built-in sample;
3Blue1Brown's 16-16 network, full speed) and, for 0, 10, 100 and 200 websocket viewers of
which a fifth never read a byte, prints:

- mini-batches trained per second, and its ratio to the run with no viewers;
- the delay from a mini-batch being trained (the server's ``time`` in each ``batches`` frame)
  to a reading client receiving it, p50 and p99, for the newest batch of each frame and for
  the oldest (estimated from the training rate: frames coalesce up to a tick of batches);
- mini-batches per second of server CPU time: on a shared machine other processes take CPU
  from the server and make the plain rate noisy; the work per mini-batch, including the
  fan-out's share, is what this column compares;
- the server's CPU use and resident memory before and after each phase (the 100-viewer
  phase lasts a minute, for the memory growth over a minute);
- the same 100-viewer phase with permessage-deflate on, for what compression costs.

Targets (issue 3): 100 viewers >= 85% of the 0-viewer throughput, p99 delay < 250 ms,
memory growth < 50 MB over a minute. The clients run in this process on the same machine, so
they compete with the server for the CPU: the figures are a pessimistic bound.

    python benchmarks/fanout.py [--quick] [--data-dir DIR]
    python benchmarks/fanout.py --redis [--quick] [--data-dir DIR]

With ``--redis`` (issue 14) it compares, for 0, 500 and 1,000 viewers, one in-process server
with a trainer plus two web processes following it through a redis-server of its own
(``serve --redis URL --workers 2``: one port, the kernel spreads the viewers over the two).
The ratios are to the in-process server's run with no viewers; the CPU figures add up every
process of the setup (redis-server's not included: it is started apart; see its line).
Target: 1,000 viewers across two web processes keep >= 85% of that throughput with a p99
delay under 500 ms.

On the built-in sample a 1000-epoch run lasts only about 20 s at full speed, too short for the
minute-long phase: use the full MNIST (the default when ../shared/data/mnist exists). A phase
whose run stopped early says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis
import websockets
from live import LiveServer, free_port, server_env

TOKEN = "benchmark"
SERVER = """
import sys, uvicorn
from pathlib import Path
from server.app import create_app
from server.config import Settings
from server.cli.serve import GIL_SWITCH_INTERVAL
sys.setswitchinterval(GIL_SWITCH_INTERVAL)
# Every viewer here comes from 127.0.0.1: the per-address door would turn all but a few away.
settings = Settings(port=int(sys.argv[1]), token="benchmark", state_dir=Path(sys.argv[2]),
                    ws_per_message_deflate=sys.argv[3] == "on", connect_limit=None)
uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning",
            ws_per_message_deflate=settings.ws_per_message_deflate, ws_max_size=65536)
"""


def start_server(deflate: bool, workdir: Path, data_dir: str | None) -> LiveServer:
    """The server in a subprocess, with its CPU time and memory read from /proc."""
    port = free_port()
    env = server_env(workdir)
    if data_dir:
        env["BACKPROP_LIVE_DATA"] = data_dir
    deflate_flag = "on" if deflate else "off"
    command = [sys.executable, "-c", SERVER, str(port), str(workdir / "state"), deflate_flag]
    return LiveServer(port, command, env, TOKEN)


@dataclass
class Phase:
    viewers: int
    deflate: bool
    rate: float
    newest_delays: list[float]
    oldest_delays: list[float]
    cpu: float
    rss_before: float
    rss_after: float
    gaps: int


async def reader(url: str, delays: list[tuple[float, int]], gaps: list[int]) -> None:
    """Read everything; for each batches frame, note how old its newest batch is."""
    expected = None
    async with websockets.connect(url, max_size=2**24) as connection:
        async for text in connection:
            if not text.startswith('{"type":"batches"'):
                continue
            received = time.time()
            frame = json.loads(text)
            if expected is not None and frame["first_batch"] != expected:
                gaps.append(frame["first_batch"] - expected)
            expected = frame["first_batch"] + len(frame["costs"])
            delays.append((received - frame["time"], len(frame["costs"])))


async def measure(server: LiveServer, viewers: int, seconds: float, deflate: bool) -> Phase:
    url = f"ws://127.0.0.1:{server.port}/ws"
    server.http.post("/api/run", json={"epochs": 1000}).raise_for_status()
    server.http.patch("/api/run", json={"speed": None}).raise_for_status()
    silent = [
        await websockets.connect(url, max_queue=1, max_size=2**24) for _ in range(viewers // 5)
    ]
    delays: list[tuple[float, int]] = []
    gaps: list[int] = []
    readers = [asyncio.create_task(reader(url, delays, gaps)) for _ in range(viewers - len(silent))]
    await asyncio.sleep(1.0)
    server.http.post("/api/run/start").raise_for_status()
    await asyncio.sleep(2.0)  # warm up: silent clients fill their buffers
    delays.clear()
    rss_before, cpu_before = server.rss_mb(), server.cpu_seconds()
    batch_before, started = server.batch(), time.monotonic()
    await asyncio.sleep(seconds)
    batch_after, elapsed = server.batch(), time.monotonic() - started
    status = server.http.get("/api/run").json()["status"]
    if status != "running":
        print(f"  (the run was {status} before the {viewers}-viewer phase ended: rate understated)")
    cpu = (server.cpu_seconds() - cpu_before) / elapsed
    rss_after = server.rss_mb()
    server.http.post("/api/run/pause").raise_for_status()
    rate = (batch_after - batch_before) / elapsed
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for connection in silent:
        connection.transport.abort()
    await asyncio.sleep(1.0)
    newest = [delay for delay, _ in delays]
    oldest = [delay + (count - 1) / rate for delay, count in delays]
    return Phase(viewers, deflate, rate, newest, oldest, cpu, rss_before, rss_after, len(gaps))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def report(phase: Phase, baseline: Phase) -> None:
    per_cpu = phase.rate / phase.cpu
    print(
        f"{phase.viewers:>4} {'on ' if phase.deflate else 'off'} {phase.rate:9.0f} "
        f"{phase.rate / baseline.rate:6.1%} {per_cpu:8.0f} "
        f"{per_cpu / (baseline.rate / baseline.cpu):6.1%} "
        f"{percentile(phase.newest_delays, 50):7.1f} {percentile(phase.newest_delays, 99):7.1f} "
        f"{percentile(phase.oldest_delays, 99):7.1f} {phase.cpu:6.2f} "
        f"{phase.rss_before:7.1f} {phase.rss_after:7.1f} {phase.rss_after - phase.rss_before:+7.1f}"
        f" {phase.gaps:4d}",
        flush=True,
    )


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A private, in-memory redis-server on a free port, and its URL."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = subprocess.Popen([*command, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    return process, url


def start_hall(workdir: Path, data_dir: str | None, redis_url: str) -> LiveServer:
    """A trainer and two web processes on one port (`serve --redis --workers 2`)."""
    port = free_port()
    env = server_env(workdir)
    if data_dir:
        env["BACKPROP_LIVE_DATA"] = data_dir
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    command += ["--redis", redis_url, "--workers", "2", "--token", TOKEN, "--connect-limit", "off"]
    command += ["--state-dir", str(workdir / "hall-state")]
    return LiveServer(port, command, env, TOKEN, quiet=True)


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main_redis(args: argparse.Namespace) -> None:
    seconds = 10.0 if args.quick else 30.0
    counts = [int(count) for count in args.viewers.split(",")]
    header = (
        "viewers deflate batches/s ratio  per-cpu  ratio   p50ms   p99ms  p99old  cpu/s  "
        "rss0MB  rss1MB  growth gaps"
    )
    with tempfile.TemporaryDirectory() as workdir:
        print("one in-process server (the default)")
        print(header)
        server = start_server(deflate=False, workdir=Path(workdir), data_dir=args.data_dir)
        try:
            baseline = None
            for viewers in (0, *counts):
                phase = asyncio.run(measure(server, viewers, seconds, False))
                baseline = baseline or phase
                report(phase, baseline)
        finally:
            server.stop()
        redis, url = start_redis()
        try:
            print("a trainer and two web processes through Redis (ratios to the line above's 0)")
            print(header)
            hall = start_hall(Path(workdir), args.data_dir, url)
            try:
                for viewers in (0, *counts):
                    redis_before = cpu_of(redis.pid)
                    started = time.monotonic()
                    phase = asyncio.run(measure(hall, viewers, seconds, False))
                    assert baseline is not None
                    report(phase, baseline)
                    redis_cpu = (cpu_of(redis.pid) - redis_before) / (time.monotonic() - started)
                    print(f"     redis-server: {redis_cpu:.2f} CPU over the phase and its set-up")
            finally:
                hall.stop()
        finally:
            redis.terminate()
            redis.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s phases instead of 60 s")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="compare one in-process server with a trainer and two web processes through Redis",
    )
    parser.add_argument(
        "--viewers",
        default="500,1000",
        help="with --redis: the viewer counts to measure, comma-separated (default %(default)s)",
    )
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    parser.add_argument(
        "--data-dir",
        default=str(default_data) if default_data.is_dir() else None,
        help="MNIST for the server (default: ../shared/data/mnist if present, else the sample)",
    )
    args = parser.parse_args()
    print(f"data: {args.data_dir or 'built-in sample'}")
    minute = 10.0 if args.quick else 60.0
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if args.redis:
        main_redis(args)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    print(
        "viewers deflate batches/s ratio  per-cpu  ratio   p50ms   p99ms  p99old  cpu/s  "
        "rss0MB  rss1MB  growth gaps"
    )
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(deflate=False, workdir=Path(workdir), data_dir=args.data_dir)
        try:
            baseline = None
            for viewers, seconds in ((0, 10.0), (10, 10.0), (100, minute), (200, 15.0)):
                phase = asyncio.run(measure(server, viewers, seconds, False))
                baseline = baseline or phase
                report(phase, baseline)
        finally:
            server.stop()
        server = start_server(deflate=True, workdir=Path(workdir), data_dir=args.data_dir)
        try:
            report(asyncio.run(measure(server, 100, 15.0, True)), baseline)
        finally:
            server.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
