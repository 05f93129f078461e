"""Fixtures that start real servers (see live_server.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from live_server import NO_LIMITS, LiveServer, start_server


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """``start(state_dir=None, flags=NO_LIMITS)`` starts a server; every one started is
    stopped at the end."""
    started: list[LiveServer] = []

    def start(state_dir: Path | None = None, flags: Sequence[str] = NO_LIMITS) -> LiveServer:
        server = start_server(state_dir or tmp_path / "state", tmp_path, flags=flags)
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
