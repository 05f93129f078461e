"""Fixtures that start real servers (see live_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer, start_server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """``start(state_dir=None, *flags)`` starts a server (``flags`` for `serve`); every one
    started is stopped at the end."""
    started: list[LiveServer] = []

    def start(state_dir: Path | None = None, *flags: str) -> LiveServer:
        server = start_server(state_dir or tmp_path / "state", tmp_path, extra_args=flags)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server shared by a module's tests; each test starts with ``fresh_run``."""
    tmp = tmp_path_factory.mktemp("server")
    live = start_server(tmp / "state", tmp)
    yield live
    live.stop()
