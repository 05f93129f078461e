"""A live server in a subprocess, shared by the benchmarks that measure it from outside.

The benchmarks run as ``python benchmarks/NAME.py`` (from any directory), so this module is
imported as ``live``: Python puts the script's own directory first on the path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx


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
    """A server started by ``command`` on ``port``, with a presenter client and /proc readings.

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

    def rss_mb(self) -> float:
        """Resident memory of the server process, in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def batch(self) -> int:
        """The number of the mini-batch the run has reached."""
        return self.http.get("/api/run").json()["batch"]

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(30)
