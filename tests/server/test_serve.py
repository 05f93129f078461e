"""`backprop-live serve`: the links it prints, only once they work, the token it protects them
with, and the ports it refuses."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from live_server import TOKEN, LiveServer, free_port

from server.cli.serve import add_serve_arguments, urls
from server.config import TOKEN_ENV, Settings, default_token


def test_serve_prints_the_presenter_and_viewer_links(server: LiveServer) -> None:
    log = server.log()
    base = f"http://127.0.0.1:{server.port}/"
    assert f"presenter: {base}?token={TOKEN}" in log
    assert f"viewers:   {base}\n" in log


def test_a_lan_host_prints_a_reachable_address() -> None:
    presenter, viewer = urls(Settings(host="0.0.0.0", port=8123, token="t"))
    assert "0.0.0.0" not in viewer
    assert viewer.startswith("http://") and viewer.endswith(":8123/")
    assert presenter == f"{viewer}?token=t"


def test_the_token_is_random_per_start_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    first, second = default_token(), default_token()
    assert first != second and len(first) >= 16
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert default_token() == "from-the-environment"


def test_serve_defaults_to_loopback() -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.token) == ("127.0.0.1", 8000, None)


def test_the_gallery_size_is_a_flag_that_takes_only_a_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    assert parser.parse_args([]).gallery_size == Settings().gallery_size == 5_000
    assert parser.parse_args(["--gallery-size", "30"]).gallery_size == 30
    for wrong in ("0", "-3", "1.5", "many"):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args(["--gallery-size", wrong])
        assert refused.value.code == 2
        assert "--gallery-size" in capsys.readouterr().err


def serve(*flags: str, tmp: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real `backprop-live serve` with ``flags`` until it exits."""
    command = [sys.executable, "-m", "server.cli", "serve", "--state-dir", str(tmp / "state")]
    return subprocess.run(
        [*command, *flags], capture_output=True, text=True, timeout=timeout, env=sample_env(tmp)
    )


def sample_env(tmp: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "BACKPROP_LIVE_DATA"}
    return {**env, "XDG_CACHE_HOME": str(tmp / "cache")}


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_a_port_out_of_range_exits_2_naming_the_flag(port: str, tmp_path: Path) -> None:
    result = serve("--port", port, tmp=tmp_path)
    assert result.returncode == 2
    assert "argument --port" in result.stderr and "1 to 65535" in result.stderr
    assert "http://" not in result.stdout


def test_a_busy_port_exits_with_one_line_and_no_links(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve("--port", str(port), tmp=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"backprop-live: port {port} on 127.0.0.1 is already in use: "
        "stop what uses it or choose --port"
    ]


def test_the_links_work_as_soon_as_they_are_printed(tmp_path: Path) -> None:
    """Whoever opens the printed link at once reaches the server: the socket listens first."""
    port = free_port()
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    command += ["--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**sample_env(tmp_path), "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = ""
        while not line.startswith("viewers:"):
            line = process.stdout.readline()
            assert line, "serve exited before printing its links"
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # accepted by the kernel: the socket was bound and listening
        answer = httpx.get(line.split()[1] + "api/health", timeout=60)
        assert answer.json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(30)
