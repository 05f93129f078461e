"""The run library when things go wrong, with a real server: killed with SIGKILL again and again
while it writes, and started on a library it cannot use (from a newer version, damaged, or in a
state directory that cannot exist). The library stays readable and loses at most the epoch in
progress; an unusable one is said in the log and the server still serves and trains the live
run."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_server import LiveServer
from test_state import trainer_pid

from server.store import DB_FILE, Store

# 800 mini-batches of 10 per epoch of the built-in sample: at full speed an epoch ends every few
# tenths of a second, so a kill lands among batch writes, epoch weights and resumable states.
BUSY = {"hidden": [16], "batch_size": 10, "epochs": 200}
PER_EPOCH = 800
KILLS = 4


def kill_9(server: LiveServer) -> None:
    """SIGKILL the trainer (the writer) and at once the web process: nothing saves on the way."""
    trainer = trainer_pid(server)
    os.kill(trainer, signal.SIGKILL)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


def library_after_a_kill(state: Path, run_id: str) -> dict[str, Any]:
    """Check the file as SQLite and as the library read it; what it holds of the run."""
    with closing(sqlite3.connect(state / DB_FILE)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    with Store(state) as store:
        row = store.run(run_id)
        assert row is not None
        evaluated = [evaluation.epoch for evaluation in store.evaluations(run_id)]
        weights = store.weight_epochs(run_id)
        batches = store.costs(run_id).batch
    assert evaluated == list(range(1, len(evaluated) + 1))
    assert set(evaluated) <= set(weights), "an epoch's weights are stored before its score"
    assert row.epochs_done == max(evaluated, default=0)
    assert len(np.unique(batches)) == len(batches)
    return {"epochs_done": row.epochs_done, "evaluated": evaluated, "weights": weights}


def train_flat_out(server: LiveServer) -> None:
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")


def test_kill_9_in_a_loop_mid_write_keeps_the_library_readable(
    server_factory: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    delays = [random.uniform(0.6, 2.0) for _ in range(KILLS)]
    run_id, before = None, None
    for delay in delays:
        server: LiveServer = server_factory(state)
        if run_id is None:
            run_id = server.fresh_run(**BUSY)["id"]
        else:
            assert before is not None
            assert_resumed_losing_at_most_an_epoch(server, run_id, before)
        train_flat_out(server)
        time.sleep(delay)
        kill_9(server)
        before = library_after_a_kill(state, run_id)
    assert before is not None and before["epochs_done"] > 0, f"kills after {delays} s"
    assert_resumed_losing_at_most_an_epoch(server_factory(state), run_id, before)


def assert_resumed_losing_at_most_an_epoch(
    server: LiveServer, run_id: str, before: dict[str, Any]
) -> None:
    """The restarted server carries on with the run, paused no earlier than the end of the
    last epoch the library had scored, and lists every epoch it had."""
    restored = server.http.get("/api/run").json()
    assert (restored["id"], restored["status"]) == (run_id, "paused")
    assert restored["batch"] >= before["epochs_done"] * PER_EPOCH
    detail = server.http.get(f"/api/runs/{run_id}").json()
    assert [evaluation["epoch"] for evaluation in detail["evals"]] == before["evaluated"]
    assert detail["epochs"] == before["weights"][: len(detail["epochs"])]
    assert set(before["evaluated"]) <= set(detail["epochs"])


def newer_version(state: Path) -> Path:
    Store(state).close()
    with closing(sqlite3.connect(state / DB_FILE)) as connection, connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return state


def damaged_file(state: Path) -> Path:
    state.mkdir(parents=True)
    (state / DB_FILE).write_bytes(np.random.default_rng(3).bytes(64 * 1024))
    return state


def impossible_directory(state: Path) -> Path:
    # A directory under a regular file: the tests run as root, who writes through any
    # permission bits, so this is the state directory that cannot be made here.
    (state.parent / "a-file").write_text("not a directory")
    return state.parent / "a-file" / "state"


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (newer_version, "written by a newer backprop-live (schema version 99"),
        (damaged_file, "is not a SQLite database or it is damaged"),
        (impossible_directory, "cannot create the state directory"),
    ],
)
def test_an_unusable_library_is_said_and_the_live_run_still_served(
    server_factory: Any,
    tmp_path: Path,
    make: Callable[[Path], Path],
    said: str,
) -> None:
    state = make(tmp_path / "state")
    file_before = (state / DB_FILE).read_bytes() if (state / DB_FILE).is_file() else None
    server: LiveServer = server_factory(state)
    server.fresh_run(hidden=[8], batch_size=500)
    assert server.ok("POST", "/api/run/step")["batch"] == 1
    assert server.http.get("/api/model").status_code == 200
    assert said in server.log() and "without" in server.log()

    listing = server.http.get("/api/runs")
    assert listing.status_code == 503
    assert "the run library could not be opened" in listing.json()["detail"]
    assert server.http.get("/runs").status_code == 200
    resume = server.control("POST", "/api/runs/anything/resume", json={})
    assert resume.status_code == 503
    if file_before is not None:
        assert (state / DB_FILE).read_bytes() == file_before, "the file is left as it was"
