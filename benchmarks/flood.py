"""Can one viewer stall the room? Training throughput while strangers classify.

Starts ``backprop-live serve`` on loopback with its default limits and the run at full speed,
then measures mini-batches trained per second in three phases of ``--seconds`` each:

1. solo: no clients;
2. flood: one client posting /api/classify as fast as it can over 8 connections, while 10
   honest clients each classify once a second (their latencies: the honest p99 in a flood);
3. honest: 100 honest clients, each classifying once a second.

Every 127.x.y.z address is this machine, so each client connects from its own loopback address
and the server counts it as a different client, as it would phones on a LAN: the flooder from
127.0.0.2, the honest clients from 127.0.1.1 up. Clients speak plain HTTP/1.1 over asyncio
streams, each group in a process of its own, so that their own cost on the same two cores is
as small as a client's can be. The body is the drawn digit of benchmarks/classify.py.

Targets (issue 10): flood >= 0.80 of solo, 100 honest clients >= 0.85 of solo, honest p99
under 100 ms during the flood, the flooder mostly 429s. Other load on the machine skews every
figure: the load average is printed before and after.

The phases run ``--rounds`` times, interleaved, and each round's rates are compared with its
own solo rate: other load on a shared machine drifts, and the medians of the ratios are what
is printed as the result.

    python benchmarks/flood.py [--seconds 10] [--rounds 3] [--honest 100] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from classify import drawn_digit
from live import LiveServer, start_server

FLOOD_CONNECTIONS = 8
HONEST_DURING_FLOOD = 10
WARM_UP = 2.0  # seconds before a phase's measurement: the worker reaches its pace


@dataclass
class Tally:
    """What one group of clients saw: each answer's status, and the seconds each took."""

    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # the clients' own process


class Connection:
    """One keep-alive HTTP/1.1 connection from ``local`` to the server: the least a client
    can spend per request."""

    def __init__(self, port: int, local: str) -> None:
        self.port = port
        self.local = local
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int, local: str) -> Connection:
        connection = cls(port, local)
        await connection.connect()
        return connection

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.local, 0)
        )

    async def post(self, path: str, body: bytes, kind: str) -> int:
        """POST ``body``; the status of the answer, read in full."""
        return (await self.request("POST", path, body, {"Content-Type": kind}))[0]

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """The status and the body of the answer to one request. A connection the server
        closed after its keep-alive timeout is opened again, and the request sent once more."""
        try:
            return await self._exchange(method, path, body, headers or {})
        except (ConnectionError, asyncio.IncompleteReadError, IndexError):
            self.writer.close()
            await self.connect()
            return await self._exchange(method, path, body, headers or {})

    async def _exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write("\r\n".join([*lines, "", ""]).encode() + body)
        status = int((await self.reader.readline()).split()[1])  # IndexError: closed
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def flood(port: int, body: bytes, seconds: float) -> Tally:
    """Classify as fast as answers come, over ``FLOOD_CONNECTIONS`` connections."""
    tally = Tally()
    deadline = time.monotonic() + seconds

    async def hammer() -> None:
        connection = await Connection.open(port, "127.0.0.2")
        while time.monotonic() < deadline:
            tally.statuses[await connection.post("/api/classify", body, "image/png")] += 1
        connection.close()

    await asyncio.gather(*(hammer() for _ in range(FLOOD_CONNECTIONS)))
    return tally


async def honest(port: int, body: bytes, seconds: float, clients: int, first: int) -> Tally:
    """``clients`` clients, each from its own address, classifying once a second."""
    tally = Tally()
    deadline = time.monotonic() + seconds

    async def person(index: int) -> None:
        number = first + index
        connection = await Connection.open(port, f"127.0.{1 + number // 250}.{1 + number % 250}")
        await asyncio.sleep(random.uniform(0, 1))  # not all in step
        beat = time.monotonic()
        while beat < deadline:
            started = time.perf_counter()
            tally.statuses[await connection.post("/api/classify", body, "image/png")] += 1
            tally.latencies.append(time.perf_counter() - started)
            beat += 1.0
            await asyncio.sleep(max(0.0, beat - time.monotonic()))
        connection.close()

    await asyncio.gather(*(person(index) for index in range(clients)))
    return tally


def run_group(
    kind: str,
    port: int,
    body: bytes,
    seconds: float,
    clients: int,
    first: int,
    results: multiprocessing.Queue,
) -> None:
    """One group of clients in a process of its own; its tally goes to ``results``."""
    started = time.process_time()
    if kind == "flood":
        tally = asyncio.run(flood(port, body, seconds))
    else:
        tally = asyncio.run(honest(port, body, seconds, clients, first))
    tally.cpu_seconds = time.process_time() - started
    results.put((kind, tally))


def measure(
    server: LiveServer, body: bytes, seconds: float, groups: list[tuple[str, int, int]]
) -> tuple[float, float, dict[str, Tally]]:
    """Mini-batches trained per second while ``groups`` (kind, clients, first address) run,
    by a fresh run (so that none reaches its last epoch meanwhile), and the cores the web
    process used meanwhile."""
    server.http.post("/api/run/reset").raise_for_status()
    server.http.post("/api/run/start").raise_for_status()
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    processes = [
        context.Process(
            target=run_group,
            args=(kind, server.port, body, WARM_UP + seconds, clients, first, results),
        )
        for kind, clients, first in groups
    ]
    for process in processes:
        process.start()
    time.sleep(WARM_UP)
    batch, cpu, started = server.batch(), server.cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    rate = (server.batch() - batch) / elapsed
    web_cores = (server.cpu_seconds() - cpu) / elapsed
    tallies = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join()
    return rate, web_cores, tallies


@dataclass
class Round:
    """One pass through the three phases: the training rates, and what the clients saw."""

    solo: float
    flooded: float
    calm: float
    flooder: Tally
    bystanders: Tally
    crowd: Tally
    web_cores: tuple[float, float, float]  # in each phase


def one_round(server: LiveServer, body: bytes, args: argparse.Namespace) -> Round:
    solo, web_solo, _ = measure(server, body, args.seconds, [])
    flood_groups = [("flood", FLOOD_CONNECTIONS, 0), ("honest", HONEST_DURING_FLOOD, 0)]
    flooded, web_flood, during = measure(server, body, args.seconds, flood_groups)
    calm, web_calm, crowd = measure(server, body, args.seconds, [("honest", args.honest, 0)])
    return Round(
        solo,
        flooded,
        calm,
        during["flood"],
        during["honest"],
        crowd["honest"],
        (web_solo, web_flood, web_calm),
    )


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    """Each round against its own solo rate (the machine's other load drifts), the medians of
    the ratios, and the clients' figures over all rounds."""
    for number, one in enumerate(rounds, 1):
        print(
            f"round {number}: alone {one.solo:.0f} mini-batches/s; flood {one.flooded:.0f} "
            f"({one.flooded / one.solo:.2f}); {args.honest} honest {one.calm:.0f} "
            f"({one.calm / one.solo:.2f})"
        )
    flood_ratio = statistics.median(one.flooded / one.solo for one in rounds)
    honest_ratio = statistics.median(one.calm / one.solo for one in rounds)
    print(
        f"training alone:               {statistics.median(r.solo for r in rounds):8.0f} "
        "mini-batches/s (median)"
    )
    print(f"one client flooding classify: {flood_ratio:.2f} of solo (median; target >= 0.80)")
    print(
        f"{args.honest:3d} honest clients, 1/s each: {honest_ratio:.2f} of solo "
        "(median; target >= 0.85)"
    )
    flooder = merged(one.flooder for one in rounds)
    seconds = len(rounds) * (WARM_UP + args.seconds)
    print(
        f"the flooder, {FLOOD_CONNECTIONS} connections, "
        f"{sum(flooder.statuses.values()) / seconds:.0f} requests/s (target: mostly 429):"
    )
    print(f"    {describe(flooder.statuses)}")
    bystanders = merged(one.bystanders for one in rounds)
    print(
        f"{HONEST_DURING_FLOOD} honest clients during the flood: {latencies(bystanders)} "
        "(target: p99 under 100 ms)"
    )
    print(f"    {describe(bystanders.statuses)}")
    crowd = merged(one.crowd for one in rounds)
    print(f"{args.honest} honest clients without a flood: {latencies(crowd)}")
    print(f"    {describe(crowd.statuses)}")
    seconds_per_phase = len(rounds) * (WARM_UP + args.seconds)
    web = [statistics.median(one.web_cores[phase] for one in rounds) for phase in range(3)]
    clients = (flooder.cpu_seconds + bystanders.cpu_seconds, crowd.cpu_seconds)
    print(
        f"cores used by the web process (median): alone {web[0]:.2f}, flood {web[1]:.2f}, "
        f"honest {web[2]:.2f}; by the clients' processes: flood "
        f"{clients[0] / seconds_per_phase:.2f}, honest {clients[1] / seconds_per_phase:.2f}"
    )


def merged(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.statuses.update(tally.statuses)
        total.latencies += tally.latencies
        total.cpu_seconds += tally.cpu_seconds
    return total


def throughput(rate: float, solo: float) -> str:
    return f"{rate:8.0f} mini-batches/s, {rate / solo:.2f} of solo"


def latencies(tally: Tally) -> str:
    return (
        f"p50 {percentile_ms(tally, 50):.1f} ms, p99 {percentile_ms(tally, 99):.1f} ms, "
        f"max {percentile_ms(tally, 100):.1f} ms ({len(tally.latencies)} answers)"
    )


def percentile_ms(tally: Tally, q: float) -> float:
    return float(np.percentile(tally.latencies, q)) * 1000 if tally.latencies else float("nan")


def describe(statuses: Counter) -> str:
    total = sum(statuses.values())
    shares = ", ".join(
        f"{status}: {count} ({count / total:.0%})" for status, count in sorted(statuses.items())
    )
    return f"{total} requests ({shares})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per phase")
    parser.add_argument("--honest", type=int, default=100, help="clients in the honest phase")
    parser.add_argument("--rounds", type=int, default=3, help="passes through the phases")
    parser.add_argument("--data-dir", help="full MNIST for the server (default: built-in sample)")
    args = parser.parse_args()
    body = drawn_digit()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), args.data_dir)
        try:
            server.http.post("/api/run", json={"epochs": 1000}).raise_for_status()
            server.http.patch("/api/run", json={"speed": None}).raise_for_status()
            print(f"network: {server.http.get('/api/run').json()['config']}")
            rounds = [one_round(server, body, args) for _ in range(args.rounds)]
        finally:
            server.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    report(rounds, args)


if __name__ == "__main__":
    main()
