"""Does the server train as fast as the command line? What the live server costs a run.

For each network, back to back and repeated: ``backprop-live train --json`` (its
``examples_per_second``: the training loop, test evaluations included, data loading not), then
the same config in a live ``backprop-live serve`` with no viewers, started at full speed
(``speed: null``) and read from ``GET /api/run`` over a few seconds. It prints both rates, their
ratio, the load average at each measurement, and the same comparison per CPU-second: the
command's CPU time less that of a one-epoch run (start-up, loading), against the trainer
process's CPU time over the measurement (its store-writer thread included). Other work on the
machine takes wall time from either side, much less so CPU time; the web process's CPU use is
printed too (with no viewers it mostly unpickles the trainer's reports).

Target (issue 15): the server at full speed with no viewers trains at ≥ 0.9 of the command
line's examples/s. The two run one after the other on the same machine, so a load that comes
and goes between them moves the ratio: compare the rounds, and the per-CPU-second column.

    python benchmarks/server_share.py [--rounds 3] [--seconds 6] [--data-dir DIR] [--network small]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from live import LiveServer, start_server

from engine.training import TrainConfig

LARGE = {"hidden": (256, 128), "activation": "relu", "loss": "cross-entropy", "batch_size": 256}
NETWORKS = {
    "small": TrainConfig(),
    "large": TrainConfig(**LARGE, lr=0.1),
}
SERVER_EPOCHS = 1000  # never reached: the measurement pauses the run long before


def default_data_dir() -> Path | None:
    """The full MNIST kept beside the repository for benchmarks, if it is there."""
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
    return shared if shared.is_dir() else None


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def train_flags(config: TrainConfig) -> list[str]:
    """The ``train`` flags that ask for ``config`` (every field of it, spelled as the CLI does)."""
    flags = []
    for name, value in config.to_dict().items():
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        flags += [f"--{name.replace('_', '-')}", text]
    return flags


def cli_run(config: TrainConfig, data_dir: Path, epochs: int) -> tuple[float, int, float]:
    """``backprop-live train --json`` for ``epochs``: its examples/s, the examples it trained
    and the CPU seconds the whole command used (start-up and data loading included)."""
    flags = train_flags(TrainConfig.from_dict({**config.to_dict(), "epochs": epochs}))
    command = [sys.executable, "-m", "server.cli", "train", *flags, "--json"]
    command += ["--data-dir", str(data_dir)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = json.loads(done.stdout)
    return float(result["examples_per_second"]), int(result["examples_seen"]), cpu


def trainer_pid(server: LiveServer) -> int:
    """The trainer process: the server's child started by multiprocessing's spawn."""
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise RuntimeError("the trainer process was not found")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_rate(
    server: LiveServer, config: TrainConfig, seconds: float
) -> tuple[float, float, float]:
    """Examples/s of a fresh run of ``config`` at full speed, per trainer CPU-second, and the
    web process's CPU use meanwhile (CPU-seconds per second)."""
    body = {**config.to_dict(), "epochs": SERVER_EPOCHS}
    server.http.post("/api/run", json=body).raise_for_status()
    server.http.patch("/api/run", json={"speed": None}).raise_for_status()
    server.http.post("/api/run/start").raise_for_status()
    pid = trainer_pid(server)
    time.sleep(1.0)  # past the first epoch's page faults
    seen, started = examples_seen(server), time.perf_counter()
    cpu, web_cpu = cpu_seconds(pid), server.cpu_seconds()
    time.sleep(seconds)
    trained = examples_seen(server) - seen
    wall, used = time.perf_counter() - started, cpu_seconds(pid) - cpu
    web = (server.cpu_seconds() - web_cpu - used) / wall  # every server process but the trainer
    server.http.post("/api/run/pause").raise_for_status()
    return trained / wall, trained / used, web


def examples_seen(server: LiveServer) -> int:
    return server.http.get("/api/run").json()["examples_seen"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--rounds", type=int, default=3, help="CLI/server pairs per network")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measurement")
    parser.add_argument("--network", choices=[*NETWORKS, "all"], default="all")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("no MNIST found beside the repository: pass --data-dir")
    names = list(NETWORKS) if args.network == "all" else [args.network]
    print(f"data: {args.data_dir}; {os.cpu_count()} cores; {load()} before")

    with tempfile.TemporaryDirectory() as workdir:
        server = start_server(Path(workdir), args.data_dir)
        try:
            for name in names:
                config = NETWORKS[name]
                sizes = "-".join(map(str, config.layer_sizes))
                print(f"{sizes} {config.activation}, {config.optimizer}, batch {config.batch_size}")
                print(
                    "  round   CLI ex/s  (load)      server ex/s  (load)   server/CLI"
                    "   ex/CPU-s: CLI    trainer  ratio  web CPU"
                )
                ratios, cpu_ratios = [], []
                # One epoch first: its CPU time is the command's start-up, loading and first
                # epoch, subtracted below to leave the CPU cost of the epochs after it.
                estimate, first_examples, first_cpu = cli_run(config, args.data_dir, 1)
                for round_ in range(1, args.rounds + 1):
                    epochs = max(2, round(args.seconds * estimate / first_examples))
                    cli, examples, cpu = cli_run(config, args.data_dir, epochs)
                    cli_per_cpu = (examples - first_examples) / (cpu - first_cpu)
                    cli_load = load()
                    estimate = cli
                    live, per_cpu, web = server_rate(server, config, args.seconds)
                    ratios.append(live / cli)
                    cpu_ratios.append(per_cpu / cli_per_cpu)
                    print(
                        f"  {round_:>5} {cli:>10,.0f}  ({cli_load})  {live:>10,.0f}  ({load()})"
                        f"   {live / cli:>8.2f}   {cli_per_cpu:>10,.0f} {per_cpu:>10,.0f}"
                        f"   {per_cpu / cli_per_cpu:>5.2f}   {web:>5.0%}",
                        flush=True,
                    )
                wall, cpu = statistics.median(ratios), statistics.median(cpu_ratios)
                print(
                    f"  server / CLI: best {max(ratios):.2f}, median {wall:.2f}; "
                    f"per CPU-second: best {max(cpu_ratios):.2f}, median {cpu:.2f}"
                )
        finally:
            server.stop()
    print(f"{load()} after (other work on the machine skews wall-clock rates)")


if __name__ == "__main__":
    main()
