"""How long does the live network take to read a drawing while the room watches it train?

Starts ``backprop-live serve`` on loopback (built-in sample unless --data-dir), draws a digit
the way the draw pad exports it (a 280x280 PNG: black antialiased strokes on transparent
pixels) and POSTs it to /api/classify, one request at a time and then from several clients at
once, first with the run paused, then while it trains as fast as it can, then while it trains
and --viewers websocket clients (default 100, in a process of their own) read every frame. It
prints:

- the latency of /api/classify as the client sees it: p50, p90, p99 and the worst;
- mini-batches trained per second while classifying, and as a ratio to training alone;
- where the time goes inside one request, measured in this process on the same PNG: decoding
  (Pillow), MNIST preprocessing (NumPy), and the rest (HTTP, JSON, the forward pass).

Target (issues 3 and 15): p99 under 15 ms on loopback while training runs. The clients and
viewers run on the same two cores as the server's web and trainer processes, so the figures
are a pessimistic bound; the load average is printed before and after.

    python benchmarks/classify.py [--requests 500] [--clients 4] [--viewers 100] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from live import LiveServer, start_server
from PIL import Image, ImageDraw

from engine.data.preprocess import to_mnist
from server.images import decode_image

SIDE = 280
# A "2" as someone draws it with a finger: a hook, a diagonal, a base line (fractions of a side).
STROKE = [(0.30, 0.32), (0.38, 0.20), (0.52, 0.16), (0.66, 0.22), (0.70, 0.35), (0.62, 0.50),
          (0.45, 0.66), (0.28, 0.82), (0.50, 0.81), (0.74, 0.80)]  # fmt: skip


def drawn_digit() -> bytes:
    """The PNG the draw pad sends: drawn 4x larger and shrunk, for antialiased edges."""
    scale = 4
    canvas = Image.new("RGBA", (SIDE * scale, SIDE * scale), (0, 0, 0, 0))
    points = [(x * SIDE * scale, y * SIDE * scale) for x, y in STROKE]
    ImageDraw.Draw(canvas).line(points, fill=(0, 0, 0, 255), width=28 * scale, joint="curve")
    buffer = io.BytesIO()
    canvas.resize((SIDE, SIDE), Image.Resampling.BOX).save(buffer, "PNG")
    return buffer.getvalue()


def classify_many(url: str, body: bytes, count: int) -> list[float]:
    """POST ``body`` ``count`` times on one connection; the seconds each answer took."""
    latencies = []
    headers = {"Content-Type": "image/png"}
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/api/classify", content=body, headers=headers).raise_for_status()  # warm up
        for _ in range(count):
            started = time.perf_counter()
            response = client.post("/api/classify", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
    return latencies


def classify_from(clients: int, url: str, body: bytes, count: int) -> tuple[list[float], float]:
    """``clients`` threads each sending ``count`` requests; all latencies and the wall time."""
    results: list[list[float]] = [[] for _ in range(clients)]

    def client(index: int) -> None:
        results[index] = classify_many(url, body, count)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [latency for result in results for latency in result], time.perf_counter() - started


def watch(url: str, viewers: int, stop: Any) -> None:
    """``viewers`` websocket clients that read every frame until ``stop`` is set (run in a
    process of its own, so they take CPU from the server as browsers would, not the GIL)."""

    async def viewer() -> None:
        async with websockets.connect(url, max_size=2**24) as connection:
            async for _ in connection:
                pass

    async def main() -> None:
        tasks = [asyncio.create_task(viewer()) for _ in range(viewers)]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def median_seconds(action, repeats: int = 300) -> float:
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def milliseconds(latencies: list[float], q: float) -> float:
    return float(np.percentile(latencies, q)) * 1000


def report(label: str, clients: int, latencies: list[float], wall: float, rate: float) -> None:
    print(
        f"{label:<9} {clients:>7} {len(latencies):>8} {milliseconds(latencies, 50):7.2f} "
        f"{milliseconds(latencies, 90):7.2f} {milliseconds(latencies, 99):7.2f} "
        f"{max(latencies) * 1000:7.2f} {len(latencies) / wall:9.0f} {rate:9.0f}",
        flush=True,
    )


def measure(server: LiveServer, label: str, clients: int, body: bytes, count: int) -> float:
    """One phase; returns the training rate (mini-batches per second) during it."""
    batch_before = server.batch()
    latencies, wall = classify_from(clients, server.url, body, count)
    rate = (server.batch() - batch_before) / wall
    report(label, clients, latencies, wall, rate)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per client")
    parser.add_argument("--clients", type=int, default=4, help="clients in the concurrent phase")
    parser.add_argument("--viewers", type=int, default=100, help="websocket viewers (0: none)")
    parser.add_argument("--data-dir", help="full MNIST for the server (default: built-in sample)")
    args = parser.parse_args()
    body = drawn_digit()

    grey = decode_image(body, "image/png")
    decode = median_seconds(lambda: decode_image(body, "image/png"))
    preprocess = median_seconds(lambda: to_mnist(grey))
    print(f"request: a drawn digit, {SIDE}x{SIDE} RGBA PNG, {len(body):,} bytes")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), args.data_dir)
        try:
            server.http.post("/api/run", json={"epochs": 1000}).raise_for_status()
            server.http.patch("/api/run", json={"speed": None}).raise_for_status()
            print(f"network: {server.http.get('/api/run').json()['config']}")
            print("phase     clients requests   p50ms   p90ms   p99ms   maxms  answers/s batches/s")
            cpu_before = server.cpu_seconds()
            sequential = classify_many(server.url, body, args.requests)
            cpu_per_request = (server.cpu_seconds() - cpu_before) / (args.requests + 1)
            report("paused", 1, sequential, sum(sequential), 0)

            server.http.post("/api/run/start").raise_for_status()
            time.sleep(2.0)  # let the worker reach its pace
            batch_before, started = server.batch(), time.perf_counter()
            time.sleep(5.0)
            alone = (server.batch() - batch_before) / (time.perf_counter() - started)
            print(f"training alone: {alone:.0f} mini-batches/s")
            rate = measure(server, "training", 1, body, args.requests)
            rate_many = measure(server, "training", args.clients, body, args.requests)
            print(
                f"training rate while classifying: {rate / alone:.0%} of alone (1 client), "
                f"{rate_many / alone:.0%} ({args.clients} clients)"
            )
            if args.viewers:
                context = multiprocessing.get_context("spawn")
                stop = context.Event()
                url = f"ws://127.0.0.1:{server.port}/ws"
                watchers = context.Process(target=watch, args=(url, args.viewers, stop))
                watchers.start()
                time.sleep(3.0)  # every viewer connected and reading
                label = f"+{args.viewers}view"
                measure(server, label, 1, body, args.requests)
                measure(server, label, args.clients, body, args.requests)
                print(f"load average with {args.viewers} viewers: {os.getloadavg()[0]:.1f}")
                stop.set()
                watchers.join(30)
            digit = server.http.post(
                "/api/classify", content=body, headers={"Content-Type": "image/png"}
            ).json()["digit"]
            print(f"the network currently reads the drawn 2 as: {digit}")
        finally:
            server.stop()

    print(f"load average after: {os.getloadavg()[0]:.1f} (other work on the machine skews it all)")
    p50 = milliseconds(sequential, 50)
    rest = p50 - (decode + preprocess) * 1000
    print(
        f"one request, in this process: decode {decode * 1000:.2f} ms (Pillow), "
        f"preprocess {preprocess * 1000:.2f} ms (NumPy); the rest of the paused p50 "
        f"(HTTP, JSON, forward pass): {rest:.2f} ms"
    )
    print(
        f"server CPU per request while paused: {cpu_per_request * 1000:.2f} ms "
        "(less sensitive to other load than the latencies)"
    )


if __name__ == "__main__":
    main()
