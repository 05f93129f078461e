"""The pages over the server's limits, in a real chromium: the draw pad says "slow down"
instead of failing, and a page turned away from a full room says so and keeps trying."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from live_server import LiveServer, start_server
from test_visualiser import WAIT_MS, draw_digit

pytestmark = pytest.mark.browser


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[LiveServer]:
    """A server that lets a client classify once, then once a minute, and lets one viewer in."""
    flags = ("--classify-limit", "1/min,burst=1", "--max-viewers", "1", "--connect-limit", "off")
    live = start_server(tmp_path / "state", tmp_path, flags=flags)
    yield live
    live.stop()


def test_the_draw_pad_says_slow_down_over_the_limit(tight: LiveServer, open_page: Any) -> None:
    page = open_page(tight.url + "/draw", width=390, height=844)
    draw_digit(page)
    page.wait_for_function(
        "() => document.querySelector('[data-answer]').textContent.startsWith('network says')",
        timeout=WAIT_MS,
    )
    page.click("[data-clear]")
    draw_digit(page)
    page.wait_for_function(
        "() => document.querySelector('[data-hint]').textContent.startsWith('slow down')",
        timeout=WAIT_MS,
    )
    hint = page.inner_text("[data-hint]")
    assert hint.startswith("slow down: asking the network again in ") and hint.endswith(" s")
    assert "could not" not in hint


class Occupant:
    """A websocket client in another thread, holding the room's only place."""

    def __init__(self, server: LiveServer) -> None:
        self.inside = threading.Event()
        self.leave = threading.Event()
        self.thread = threading.Thread(target=asyncio.run, args=(self.stay(server),))
        self.thread.start()
        assert self.inside.wait(30), "the occupant did not get in"

    async def stay(self, server: LiveServer) -> None:
        async with websockets.connect(server.ws_url, max_size=2**24) as connection:
            await connection.recv()
            self.inside.set()
            while not self.leave.is_set():
                await asyncio.sleep(0.05)

    def go(self) -> None:
        self.leave.set()
        self.thread.join(30)


def test_a_page_turned_away_from_a_full_room_says_so_and_gets_in_later(
    tight: LiveServer, open_page: Any
) -> None:
    occupant = Occupant(tight)
    try:
        page = open_page(tight.url + "/")
        page.wait_for_function(
            "() => document.querySelector('[data-part=connection]').dataset.state === 'full'",
            timeout=WAIT_MS,
        )
        assert page.inner_text("[data-part=connection]").startswith("the room is full, retrying")
    finally:
        occupant.go()
    page.wait_for_function(
        "() => document.querySelector('[data-part=connection]').dataset.state === 'open'",
        timeout=120_000,  # the page waits up to twice its back-off before it tries again
    )
