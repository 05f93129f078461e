"""A lesson's worth of abuse: does the server stay whole, lose nothing and keep training?

Starts ``backprop-live serve`` on loopback with its default limits and the run at full speed,
measures training alone, then for ``--minutes``:

- 200 viewers (``--viewers``), each from its own loopback address, connect to /ws, read for a
  random while, and vanish (half close politely, half just drop the connection), then come back;
- 30 clients classify the drawn digit of benchmarks/classify.py about once a second, and 10
  ask for explanations of random test digits every few seconds, then fetch them by key;
- the presenter lets the run train for a few seconds at a time, then pauses it, steps it and
  changes the learning rate, and starts it again.

It prints the server's memory (web process and trainer process) at the start and the end,
the batches lost by viewers that kept reading (every index from their hello on, once and in
order: must be 0), the 5xx answers (must be 0), and the training throughput while running as
a share of training alone. Not a test: it takes minutes and its figures depend on the machine.

    python benchmarks/soak.py [--minutes 10] [--viewers 200] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from classify import drawn_digit
from flood import Connection
from live import TOKEN, LiveServer, start_server

CLASSIFIERS = 30
EXPLAINERS = 10
RUNNING_SECONDS = (4.0, 10.0)  # how long the presenter lets it train between interruptions


@dataclass
class Soak:
    """What every client saw."""

    deadline: float
    lost_batches: int = 0
    repeated_batches: int = 0
    readers: int = 0  # connections that read until they chose to leave
    dropped_by_server: Counter = field(default_factory=Counter)  # close codes, errors
    statuses: Counter = field(default_factory=Counter)  # HTTP answers, by route and status
    running_seconds: float = 0.0
    running_batches: int = 0


def address(group: int, index: int) -> str:
    return f"127.{group}.{1 + index // 250}.{1 + index % 250}"


class Reader:
    """One viewer's stream: checks that batch indices continue with no gap or repeat."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.run: str | None = None
        self.next_batch = 0

    def take(self, text: str) -> None:
        if '"snapshot"' in text[:40]:
            return  # the heavy frames: nothing here to check, not worth parsing
        frame = json.loads(text)
        if frame["type"] == "hello":
            self.run, self.next_batch = frame["run"]["id"], frame["history"]["next_batch"]
        elif frame["type"] == "batches":
            if frame["run"] != self.run:  # a new run starts its indices again
                self.run, self.next_batch = frame["run"], frame["first_batch"]
            gap = frame["first_batch"] - self.next_batch
            self.soak.lost_batches += max(0, gap)
            self.soak.repeated_batches += max(0, -gap)
            self.next_batch = frame["first_batch"] + len(frame["costs"])


async def viewer(port: int, index: int, soak: Soak) -> None:
    """Connect, read for a while, vanish; again until the end."""
    local = (address(2, index), 0)
    while time.monotonic() < soak.deadline:
        stay = random.uniform(1, 30)
        try:
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws", max_size=2**24, local_addr=local
            ) as connection:
                await read_for(connection, Reader(soak), stay)
                soak.readers += 1
                if random.random() < 0.5:
                    connection.transport.abort()  # gone without a word
        except websockets.ConnectionClosed as closed:
            soak.dropped_by_server[closed.rcvd.code if closed.rcvd else None] += 1
        except OSError as error:
            soak.dropped_by_server[type(error).__name__] += 1
        await asyncio.sleep(random.uniform(0, 3))


async def read_for(connection: websockets.ClientConnection, reader: Reader, seconds: float) -> None:
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        with contextlib.suppress(TimeoutError):
            reader.take(await asyncio.wait_for(connection.recv(), left))


async def classifier(port: int, index: int, body: bytes, soak: Soak) -> None:
    connection = await Connection.open(port, address(3, index))
    while time.monotonic() < soak.deadline:
        status = await connection.post("/api/classify", body, "image/png")
        soak.statuses[("classify", status)] += 1
        await asyncio.sleep(random.uniform(0.5, 1.5))
    connection.close()


async def explainer(port: int, index: int, soak: Soak) -> None:
    connection = await Connection.open(port, address(4, index))
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < soak.deadline:
        body = json.dumps({"index": random.randrange(1000)}).encode()
        status, answer = await connection.request("POST", "/api/explain", body, headers)
        soak.statuses[("explain", status)] += 1
        if status == 200:
            key = json.loads(answer)["key"]
            status, _ = await connection.request("GET", f"/api/explain/{key}")
            soak.statuses[("trace", status)] += 1
        await asyncio.sleep(random.uniform(3, 8))
    connection.close()


async def presenter(port: int, soak: Soak) -> None:
    """Train for a while, then pause, step, change the learning rate, and start again."""
    connection = await Connection.open(port, "127.0.0.1")

    async def command(method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        payload = b"" if body is None else json.dumps(body).encode()
        status, answer = await connection.request(method, path, payload, headers)
        soak.statuses[(path, status)] += 1
        return json.loads(answer) if status == 200 else {}

    while time.monotonic() < soak.deadline:
        started = (await command("POST", "/api/run/start")).get("batch", 0)
        since = time.monotonic()
        await asyncio.sleep(min(random.uniform(*RUNNING_SECONDS), soak.deadline - since))
        paused = await command("POST", "/api/run/pause")
        if paused.get("status") == "finished":  # it stopped early: its pace is not measured
            await command("POST", "/api/run/reset")
            continue
        soak.running_seconds += time.monotonic() - since
        soak.running_batches += paused.get("batch", started) - started
        for _ in range(random.randint(1, 3)):
            await command("POST", "/api/run/step")
        await command("PATCH", "/api/run", {"lr": random.choice([2.0, 3.0, 4.0])})
    connection.close()


async def soak_for(port: int, minutes: float, viewers: int, body: bytes) -> Soak:
    soak = Soak(deadline=time.monotonic() + minutes * 60)
    await asyncio.gather(
        presenter(port, soak),
        *(viewer(port, index, soak) for index in range(viewers)),
        *(classifier(port, index, body, soak) for index in range(CLASSIFIERS)),
        *(explainer(port, index, soak) for index in range(EXPLAINERS)),
    )
    return soak


def trainer_rss_mb(server: LiveServer) -> float:
    """Resident memory of the server's children (the trainer process), in MB."""
    total = 0.0
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def solo_rate(server: LiveServer, seconds: float = 10.0) -> float:
    server.http.post("/api/run/start").raise_for_status()
    time.sleep(2.0)
    batch, started = server.batch(), time.perf_counter()
    time.sleep(seconds)
    rate = (server.batch() - batch) / (time.perf_counter() - started)
    server.http.post("/api/run/pause").raise_for_status()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--data-dir", help="full MNIST for the server (default: built-in sample)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), args.data_dir)
        try:
            server.http.post("/api/run", json={"epochs": 1000}).raise_for_status()
            server.http.patch("/api/run", json={"speed": None}).raise_for_status()
            alone = solo_rate(server)
            memory = (server.rss_mb(), trainer_rss_mb(server))
            cpu = (server.cpu_seconds(), time.process_time(), time.perf_counter())
            soak = asyncio.run(soak_for(server.port, args.minutes, args.viewers, drawn_digit()))
            elapsed = time.perf_counter() - cpu[2]
            cores = (
                (server.cpu_seconds() - cpu[0]) / elapsed,
                (time.process_time() - cpu[1]) / elapsed,
            )
            after = (server.rss_mb(), trainer_rss_mb(server))
            alive = server.http.get("/api/health").status_code == 200
        finally:
            server.stop()
    report(soak, alone, memory, after, alive, args)
    print(
        f"cores used: web process {cores[0]:.2f}, "
        f"this script's clients {cores[1]:.2f} (on the same two cores)"
    )


def report(
    soak: Soak,
    alone: float,
    memory: tuple[float, float],
    after: tuple[float, float],
    alive: bool,
    args: argparse.Namespace,
) -> None:
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"{args.minutes:g} minutes, {args.viewers} viewers coming and going")
    print(f"memory, web process: {memory[0]:.0f} MB at the start, {after[0]:.0f} MB at the end")
    print(f"memory, trainer:     {memory[1]:.0f} MB at the start, {after[1]:.0f} MB at the end")
    print(
        f"batches lost by readers: {soak.lost_batches} (repeated: {soak.repeated_batches}) "
        f"over {soak.readers} connections that read until they left"
    )
    print(f"connections that failed or were closed: {dict(soak.dropped_by_server) or 'none'}")
    server_errors = sum(count for (_, status), count in soak.statuses.items() if status >= 500)
    print(f"5xx answers: {server_errors}; the server still answers: {alive}")
    for (route, status), count in sorted(soak.statuses.items()):
        print(f"    {route:<16} {status}: {count}")
    rate = soak.running_batches / soak.running_seconds if soak.running_seconds else 0.0
    print(
        f"training alone: {alone:.0f} mini-batches/s; while running in the soak: {rate:.0f} "
        f"mini-batches/s = {rate / alone:.2f} of alone"
    )


if __name__ == "__main__":
    main()
