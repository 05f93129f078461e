"""What a race costs: each lane's examples/s and the race's total, against a single run.

One live ``backprop-live serve`` on the full MNIST, no viewers, everything at full speed
(``speed: null``). First a single run (3Blue1Brown's network, batch 100) for ``--seconds``,
read from GET /api/run; then a race of the same network with batches 10, 100 and 1000 (pace
"examples", then pace "time"), read from GET /api/race over the same time. For each lane it
prints examples/s of wall time (what the room sees) and per training second (the lane's own
``seconds``: how fast its mini-batches are, whatever the other lanes take), and the race's
total beside the single run's rate. The load average is printed with every measurement: on a
busy machine, compare the columns of one run, not figures of runs at different loads.

    python benchmarks/race.py [--seconds 5] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from live import LiveServer, start_server

EPOCHS = 1000  # never reached: the measurement pauses long before
BATCHES = (10, 100, 1000)


def default_data_dir() -> Path | None:
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def ok(server: LiveServer, method: str, path: str, **kwargs: Any) -> Any:
    response = server.http.request(method, path, **kwargs)
    response.raise_for_status()
    return response.json()


def measure(server: LiveServer, path: str, seconds: float) -> tuple[Any, Any, float]:
    """Start, read ``path`` after a warm-up second and again ``seconds`` later, pause."""
    ok(server, "PATCH", "/api/run", json={"speed": None})
    ok(server, "POST", "/api/run/start")
    time.sleep(1.0)
    before, started = ok(server, "GET", path), time.monotonic()
    time.sleep(seconds)
    after, elapsed = ok(server, "GET", path), time.monotonic() - started
    ok(server, "POST", "/api/run/pause")
    return before, after, elapsed


def single_run(server: LiveServer, seconds: float) -> float:
    ok(server, "POST", "/api/run", json={"batch_size": 100, "epochs": EPOCHS})
    before, after, elapsed = measure(server, "/api/run", seconds)
    rate = (after["examples_seen"] - before["examples_seen"]) / elapsed
    print(f"single run, batch 100: {rate:,.0f} examples/s ({load()})")
    return rate


def race(server: LiveServer, pace: str, seconds: float, single: float) -> None:
    lanes = [
        {"label": f"batch {size}", "config": {"batch_size": size, "epochs": EPOCHS}}
        for size in BATCHES
    ]
    ok(server, "POST", "/api/race", json={"lanes": lanes, "pace": pace})
    before, after, elapsed = measure(server, "/api/race", seconds)
    print(f"race, pace {pace} ({load()}):")
    total = 0.0
    for old, new in zip(before["lanes"], after["lanes"]):
        examples = new["examples_seen"] - old["examples_seen"]
        trained = new["seconds"] - old["seconds"]
        total += examples / elapsed
        print(
            f"  {new['label']:>10}: {examples / elapsed:>9,.0f} examples/s, "
            f"{examples / trained if trained else 0:>9,.0f} per training second, "
            f"{trained / elapsed:.0%} of the time"
        )
    print(f"  {'total':>10}: {total:>9,.0f} examples/s = {total / single:.2f}x the single run")
    ok(server, "DELETE", "/api/race")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("no MNIST found beside the repository: pass --data-dir")
    print(f"data: {args.data_dir}; {os.cpu_count()} cores; {load()} before")
    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), args.data_dir)
        try:
            single = single_run(server, args.seconds)
            for pace in ("examples", "time"):
                race(server, pace, args.seconds, single)
        finally:
            server.process.terminate()
            server.process.wait(30)


if __name__ == "__main__":
    main()
