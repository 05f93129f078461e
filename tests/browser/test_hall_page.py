"""The visualiser with several web processes (``serve --redis``): a page whose process dies
reconnects to the same address, lands on another process and carries on where it was."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from live_server import NO_LIMITS, free_port, start_server
from redis_setup import start_redis, start_trainer


class Sockets:
    """Every websocket a page opens, with the frames it receives (parsed)."""

    def __init__(self, page: Any) -> None:
        self.opened: list[tuple[str, list[dict[str, Any]]]] = []
        page.on("websocket", self._open)

    def _open(self, websocket: Any) -> None:
        frames: list[dict[str, Any]] = []
        self.opened.append((websocket.url, frames))
        websocket.on("framereceived", lambda data: frames.append(json.loads(data)))

    def batches(self, index: int) -> list[int]:
        """The batch indices socket ``index`` received (none before it opens)."""
        return batch_indices(self.opened[index][1]) if len(self.opened) > index else []


def batch_indices(frames: list[dict[str, Any]]) -> list[int]:
    return [
        frame["first_batch"] + i
        for frame in frames
        if frame["type"] == "batches"
        for i in range(len(frame["costs"]))
    ]


def wait_until(page: Any, condition: Any, timeout: float = 60.0) -> None:
    """Let the page run until ``condition()`` holds (polling; fails after ``timeout`` s)."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        page.wait_for_timeout(50)
    assert condition()


def test_a_page_whose_process_dies_carries_on_on_another_without_starting_over(
    browser: Any, tmp_path: Path
) -> None:
    redis = start_redis(tmp_path)
    state = tmp_path / "state"
    trainer = start_trainer(redis.url, state, tmp_path)
    port = free_port()
    flags = [*NO_LIMITS, "--redis", redis.url, "--reuse-port"]  # two processes, one port
    first = start_server(state, tmp_path, port=port, flags=flags)
    second = None
    context = browser.new_context()
    try:
        run = first.fresh_run(epochs=500, batch_size=20)
        first.ok("PATCH", "/api/run", json={"speed": 40.0})
        page = context.new_page()
        sockets = Sockets(page)
        page.goto(first.url + "/")  # only the first process listens yet: the page is on it
        first.ok("POST", "/api/run/start")
        wait_until(page, lambda: len(sockets.batches(0)) > 10)
        second = start_server(state, tmp_path, port=port, flags=flags)
        wait_until(page, lambda: "following the trainer's reports" in second.log())
        wait_until(page, lambda: len(sockets.batches(0)) > 40)
        first.process.send_signal(signal.SIGKILL)
        wait_until(page, lambda: len(sockets.opened) == 2 and len(sockets.opened[1][1]) > 3)
        connection = "document.documentElement.dataset.connection"
        wait_until(page, lambda: page.evaluate(connection) == "open")
        url, frames = sockets.opened[1]
        assert f"run={run['id']}" in url and "next=" in url
        assert all(frame["type"] != "hello" for frame in frames)  # carried on, not over
        before, after = batch_indices(sockets.opened[0][1]), batch_indices(frames)
        seen = before + after
        assert seen == list(range(seen[0], seen[-1] + 1)), "a batch missed or seen twice"
        second.ok("POST", "/api/run/pause")
    finally:
        context.close()
        for web in (first, second):
            if web is not None:
                web.stop()
        trainer.stop()
        redis.stop()
