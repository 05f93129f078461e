"""The Dockerfile's own commands, run here: no Docker engine is needed to check that its CMD
starts the server the way the image would, and that its HEALTHCHECK passes against it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from live_server import free_port

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def instruction(name: str) -> str:
    """The text of the last ``name`` instruction, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    matches = re.findall(rf"^{name}\s+(.*)$", text, flags=re.MULTILINE)
    assert matches, f"the Dockerfile has no {name}"
    return matches[-1].strip()


def test_the_image_is_slim_and_runs_as_a_user() -> None:
    assert re.match(r"python:3\.\d+-slim", instruction("FROM"))
    assert instruction("USER") not in ("root", "0")


def test_cmd_serves_and_the_healthcheck_passes(tmp_path: Path) -> None:
    command = json.loads(instruction("CMD"))
    assert command[:2] == ["backprop-live", "serve"] and "0.0.0.0" in command
    port = free_port()
    argv = [arg.replace("8000", str(port)).replace("/data", str(tmp_path)) for arg in command]
    argv[argv.index("0.0.0.0")] = "127.0.0.1"  # the same command, kept off the network here
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", *argv[1:]],
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        check = json.loads(re.sub(r"^.*?CMD\s+", "", instruction("HEALTHCHECK")))
        check = [arg.replace("8000", str(port)) for arg in check]
        assert check[0] == "python"
        assert subprocess.run([sys.executable, *check[1:]], timeout=30).returncode == 0
    finally:
        server.terminate()
        server.wait(30)
    assert subprocess.run([sys.executable, *check[1:]], timeout=30).returncode != 0
