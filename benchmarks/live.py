"""A live server in a subprocess, shared by the benchmarks that measure it from outside.

The benchmarks run as ``python benchmarks/NAME.py`` (from any directory), so this module is
imported as ``live``: Python puts the script's own directory first on the path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "benchmark"  # the presenter's token of every server a benchmark starts


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(workdir: Path) -> dict[str, str]:
    """This process's environment with a private cache and no inherited data directory."""
    env = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache")}
    env.pop("BACKPROP_LIVE_DATA", None)
    return env


class LiveServer:
    """A server started by ``command`` on ``port``, with a presenter client and /proc readings
    of all its processes (the web process and the trainer).

    Waits for /api/health so every measurement starts with the server already up.
    """

    def __init__(
        self, port: int, command: list[str], env: dict[str, str], token: str, quiet: bool = False
    ) -> None:
        self.port = port
        output = subprocess.DEVNULL if quiet else None
        self.process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self.http.headers["Authorization"] = f"Bearer {token}"
        for _ in range(600):
            try:
                if self.http.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def processes(self) -> list[int]:
        """The server and every process under it (the trainer, multiprocessing's helper)."""
        found, waiting = [], [self.process.pid]
        while waiting:
            pid = waiting.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                children = task / "children"
                if children.exists():
                    waiting += [int(child) for child in children.read_text().split()]
        return found

    def rss_mb(self) -> float:
        """Resident memory of the server's processes together, in MB."""
        total_kb = 0
        for pid in self.processes():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        return total_kb / 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server's processes have used so far (of the living
        ones: a phase that restarts a process is not measured right)."""
        ticks = 0
        for pid in self.processes():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def batch(self) -> int:
        """The number of the mini-batch the run has reached."""
        return self.http.get("/api/run").json()["batch"]

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(30)


def start_server(workdir: Path, data_dir: str | Path | None) -> LiveServer:
    """``backprop-live serve`` on a free loopback port with its default limits, its state in
    ``workdir``, on ``data_dir`` (None: the built-in sample)."""
    port = free_port()
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    command += ["--token", TOKEN, "--state-dir", str(workdir / "state")]
    command += ["--data-dir", str(data_dir)] if data_dir else []
    return LiveServer(port, command, server_env(workdir), TOKEN, quiet=True)
