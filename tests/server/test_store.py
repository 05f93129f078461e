"""The run library's database, on real SQLite files: writes that never wait, reads from other
threads, a real kill -9 in the middle of writing, and every way a file can be unusable."""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server import store as store_module
from server.store import DB_FILE, SCHEMA_VERSION, EvalRow, RaceTag, Store, StoreError

REPO = Path(__file__).resolve().parents[2]
LAYERS = 3
BATCH_SIZE = 100


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path) -> Iterator[Store]:
    with Store(state_dir) as opened:
        yield opened


def inspect(state_dir: Path) -> sqlite3.Connection:
    """A plain connection to look at the file as SQLite sees it."""
    return sqlite3.connect(state_dir / DB_FILE)


def rows_in(state_dir: Path, table: str, run_id: str) -> int:
    with inspect(state_dir) as connection:
        return connection.execute(
            f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)
        ).fetchone()[0]


def batch_values(first: int, count: int) -> dict[str, list]:
    """Mini-batches ``first``..``first + count - 1`` with values that say which batch they are."""
    batches = range(first, first + count)
    return {
        "costs": [1.0 / (1 + batch) for batch in batches],
        "examples_seen": [(batch + 1) * BATCH_SIZE for batch in batches],
        "seconds": [0.01 * (batch + 1) for batch in batches],
        "gradient_norms": [[batch + layer / 10 for layer in range(LAYERS)] for batch in batches],
    }


def add_batches(store: Store, run_id: str, first: int, count: int) -> None:
    store.add_batches(run_id, first, **batch_values(first, count))


def create_run(store: Store, run_id: str, created_at: float = 1.0e9) -> None:
    store.create_run(run_id, f"run {run_id}", {"hidden": [16, 16], "lr": 3.0}, "sample", created_at)


def create_old_run(state_dir: Path, run_id: str) -> None:
    """A run as a library of schema version 1 or 2 holds it (no race columns to insert)."""
    with inspect(state_dir) as connection:
        connection.execute(
            "INSERT INTO runs (id, name, config, dataset, status, created_at, updated_at) "
            "VALUES (?, ?, '{}', 'sample', 'paused', 1.0e9, 1.0e9)",
            (run_id, f"run {run_id}"),
        )


def train_epochs(store: Store, run_id: str, epochs: int, batches_per_epoch: int) -> None:
    """What a trainer stores: initial weights, then per epoch its batches, an evaluation at
    its end, the weights at its end and a resumable state."""
    store.save_weights(run_id, 0, b"weights at epoch 0")
    for epoch in range(1, epochs + 1):
        first = (epoch - 1) * batches_per_epoch
        add_batches(store, run_id, first, batches_per_epoch)
        examples = (first + batches_per_epoch) * BATCH_SIZE
        store.add_evaluation(run_id, epoch, examples, float(epoch), 0.5 + epoch / 100, 1.0 / epoch)
        store.save_weights(run_id, epoch, f"weights at epoch {epoch}".encode())
        store.save_state(run_id, first + batches_per_epoch, f"state at epoch {epoch}".encode())


# Writing and reading back.


def test_sixty_thousand_batches_read_back_exactly(store: Store) -> None:
    create_run(store, "long")
    for first in range(0, 60_000, 100):
        add_batches(store, "long", first, 100)
    assert store.flush(timeout=120)
    series = store.costs("long")
    expected = batch_values(0, 60_000)
    np.testing.assert_array_equal(series.batch, np.arange(60_000))
    np.testing.assert_array_equal(series.examples_seen, expected["examples_seen"])
    np.testing.assert_array_equal(series.cost, expected["costs"])
    np.testing.assert_array_equal(series.seconds, expected["seconds"])
    np.testing.assert_array_equal(series.gradient_norms, expected["gradient_norms"])
    assert (series.batch.dtype, series.cost.dtype, series.gradient_norms.shape) == (
        np.int64,
        np.float64,
        (60_000, LAYERS),
    )


def test_numpy_values_are_taken_and_buffers_may_be_reused_at_once(store: Store) -> None:
    create_run(store, "a")
    values = batch_values(0, 10)
    buffers = {name: np.array(value) for name, value in values.items()}
    store.add_batches("a", np.int64(0), **buffers)
    for buffer in buffers.values():
        buffer.fill(-1)
    store.update_run("a", examples_seen=np.int64(1000), seconds=np.float32(0.5))
    store.add_evaluation("a", np.int64(1), np.int64(1000), np.float32(0.5), np.float32(0.5), None)
    assert store.flush()
    np.testing.assert_array_equal(store.costs("a").cost, values["costs"])
    np.testing.assert_array_equal(store.costs("a").gradient_norms, values["gradient_norms"])
    assert store.evaluations("a") == [EvalRow(1, 1000, 0.5, 0.5, None)]
    run = store.run("a")
    assert run is not None and (run.examples_seen, run.seconds) == (1000, 0.5)


def test_an_unknown_run_reads_as_empty(store: Store) -> None:
    assert store.run("nobody") is None
    assert store.costs("nobody").batch.shape == (0,)
    assert store.costs("nobody").gradient_norms.shape == (0, 0)
    assert store.evaluations("nobody") == []
    assert (store.weights("nobody", 0), store.weight_epochs("nobody")) == (None, [])
    assert (store.state("nobody"), store.latest_run_id()) == (None, None)


def test_re_adding_batches_weights_or_state_replaces_them(store: Store) -> None:
    create_run(store, "a")
    add_batches(store, "a", 0, 10)
    store.add_batches("a", 5, [9.0, 8.0], [1, 2], [3.0, 4.0], [[0.0] * LAYERS] * 2)
    store.save_weights("a", 1, b"first")
    store.save_weights("a", 1, b"second")
    store.save_state("a", 10, b"at 10")
    store.save_state("a", 20, b"at 20")
    assert store.flush()
    series = store.costs("a")
    np.testing.assert_array_equal(series.batch, np.arange(10))
    assert list(series.cost[4:8]) == [0.2, 9.0, 8.0, 1 / 8]
    assert (store.weights("a", 1), store.weight_epochs("a")) == (b"second", [1])
    assert store.state("a") == (20, b"at 20")


def test_add_batches_refuses_sequences_of_different_lengths(store: Store) -> None:
    with pytest.raises(ValueError, match="2 costs, 1 examples_seen"):
        store.add_batches("a", 0, [1.0, 2.0], [1], [1.0, 2.0], [[1.0], [2.0]])
    with pytest.raises(ValueError, match="one sequence of floats per batch"):
        store.add_batches("a", 0, [1.0, 2.0], [1, 2], [1.0, 2.0], [1.0, 2.0])


def test_non_finite_values_are_stored_as_null(store: Store, state_dir: Path) -> None:
    create_run(store, "a")
    costs = [0.5, math.nan, math.inf, -math.inf, np.float32(0.25)]
    store.add_batches("a", 0, costs, [1, 2, 3, 4, 5], [1.0] * 5, [[1.0]] * 5)
    store.add_evaluation("a", 1, 100, 1.0, 0.1, math.nan)
    store.add_evaluation("a", 2, 200, 2.0, 0.2, None)
    store.add_evaluation("a", 3, 300, 3.0, 0.3, 0.75)
    assert store.flush()
    with inspect(state_dir) as connection:
        stored = connection.execute("SELECT cost FROM batches ORDER BY batch").fetchall()
    assert stored == [(0.5,), (None,), (None,), (None,), (0.25,)]
    np.testing.assert_array_equal(store.costs("a").cost, [0.5, np.nan, np.nan, np.nan, 0.25])
    assert [row.cost for row in store.evaluations("a")] == [None, None, 0.75]


def test_the_run_summary_follows_updates_and_evaluations(store: Store) -> None:
    create_run(store, "old", created_at=100.0)
    create_run(store, "new", created_at=200.0)
    store.add_evaluation("old", 1, 6000, 10.0, 0.80, 0.30)
    store.add_evaluation("old", 2, 12000, 20.0, 0.90, 0.20)
    store.update_run("old", status="finished", examples_seen=12000, seconds=21.5, name="Tuesday")
    assert store.flush()
    new, old = store.runs()
    assert (new.id, new.status, new.epochs_done, new.test_accuracy) == ("new", "paused", 0, None)
    assert new.updated_at == new.created_at == 200.0
    assert (old.name, old.status, old.examples_seen, old.seconds) == (
        "Tuesday",
        "finished",
        12000,
        21.5,
    )
    assert (old.epochs_done, old.test_accuracy, old.test_cost) == (2, 0.90, 0.20)
    assert (old.config, old.dataset) == ({"hidden": [16, 16], "lr": 3.0}, "sample")
    assert old.updated_at > new.updated_at
    assert store.latest_run_id() == "old"
    assert store.run("old") == old
    assert store.evaluations("old") == [
        EvalRow(epoch=1, examples_seen=6000, seconds=10.0, accuracy=0.80, cost=0.30),
        EvalRow(epoch=2, examples_seen=12000, seconds=20.0, accuracy=0.90, cost=0.20),
    ]


def test_renaming_a_run_keeps_which_run_trained_last(store: Store) -> None:
    create_run(store, "old", created_at=100.0)
    create_run(store, "new", created_at=200.0)
    store.update_run("new", status="running", examples_seen=100)
    assert store.flush()
    trained_last = store.run("new")
    store.rename_run("old", "Tuesday's network")
    assert store.flush()
    renamed = store.run("old")
    assert renamed is not None and renamed.name == "Tuesday's network"
    assert renamed.updated_at == 100.0
    assert store.latest_run_id() == "new" and store.run("new") == trained_last


def test_listing_runs_never_reads_the_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_run(store, "a")
    add_batches(store, "a", 0, 100)
    assert store.flush()
    statements: list[str] = []
    connect = sqlite3.connect

    def traced_connect(*args, **kwargs) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(store_module.sqlite3, "connect", traced_connect)
    assert [run.id for run in store.runs()] == ["a"]
    listing = list(statements)
    store.costs("a")
    assert listing and not any("batches" in statement for statement in listing)
    assert any("batches" in statement for statement in statements[len(listing) :])


def test_deleting_a_run_removes_everything_stored_with_it(store: Store, state_dir: Path) -> None:
    for run_id in ("gone", "kept"):
        create_run(store, run_id)
        train_epochs(store, run_id, epochs=2, batches_per_epoch=10)
    store.delete_run("gone")
    assert store.flush()
    for table in ("batches", "evaluations", "weights", "states"):
        assert (rows_in(state_dir, table, "gone"), rows_in(state_dir, table, "kept")) != (0, 0)
        assert rows_in(state_dir, table, "gone") == 0, table
    assert [run.id for run in store.runs()] == ["kept"]
    assert len(store.costs("kept").batch) == 20


def test_truncate_at_an_epoch_end_keeps_that_epoch(store: Store) -> None:
    create_run(store, "a")
    train_epochs(store, "a", epochs=3, batches_per_epoch=10)
    store.truncate("a", 10)  # resume at the end of epoch 1
    assert store.flush()
    assert len(store.costs("a").batch) == 10
    assert [row.epoch for row in store.evaluations("a")] == [1]
    assert store.weight_epochs("a") == [0, 1]
    assert store.state("a") is None  # taken at batch 30, after the point the run goes back to
    run = store.run("a")
    assert run is not None
    assert (run.examples_seen, run.seconds, run.epochs_done) == (10 * BATCH_SIZE, 0.1, 1)
    assert (run.test_accuracy, run.test_cost) == (0.51, 1.0)
    add_batches(store, "a", 10, 5)  # and the run continues from there
    assert store.flush()
    np.testing.assert_array_equal(store.costs("a").batch, np.arange(15))


def test_truncate_mid_epoch_keeps_the_finished_epochs(store: Store) -> None:
    create_run(store, "a")
    train_epochs(store, "a", epochs=3, batches_per_epoch=10)
    store.save_state("a", 14, b"at 14")
    store.truncate("a", 15)
    assert store.flush()
    assert len(store.costs("a").batch) == 15
    assert [row.epoch for row in store.evaluations("a")] == [1]
    assert store.weight_epochs("a") == [0, 1]
    assert store.state("a") == (14, b"at 14")  # taken before the point the run goes back to
    store.truncate("a", 0)
    assert store.flush()
    assert (len(store.costs("a").batch), store.evaluations("a")) == (0, [])
    assert (store.weight_epochs("a"), store.state("a")) == ([0], None)
    run = store.run("a")
    assert run is not None
    assert (run.examples_seen, run.epochs_done, run.test_accuracy) == (0, 0, None)


# The writer: never waits, keeps order, survives failures.


def test_writes_return_while_another_connection_holds_the_lock(
    store: Store, state_dir: Path
) -> None:
    create_run(store, "a")
    assert store.flush()
    blocker = sqlite3.connect(state_dir / DB_FILE, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the write lock, as a `train --record` mid-commit
    written = threading.Event()

    def trainer() -> None:
        for first in range(0, 5000, 100):
            add_batches(store, "a", first, 100)
        store.update_run("a", status="running", examples_seen=5000 * BATCH_SIZE)
        written.set()

    threading.Thread(target=trainer).start()
    try:
        assert written.wait(timeout=10), "a write waited for the database lock"
        assert len(store.costs("a").batch) == 0  # reads go on meanwhile, and nothing is in
    finally:
        blocker.execute("COMMIT")
    assert store.flush(timeout=60)
    np.testing.assert_array_equal(store.costs("a").batch, np.arange(5000))


def test_writes_commit_in_the_order_they_were_made(store: Store) -> None:
    create_run(store, "a")
    add_batches(store, "a", 0, 10)
    store.delete_run("a")
    create_run(store, "a")
    add_batches(store, "a", 0, 3)
    store.update_run("a", name="second")
    assert store.flush()
    assert len(store.costs("a").batch) == 3
    assert [run.name for run in store.runs()] == ["second"]


def test_reads_from_other_threads_see_whole_commits_while_the_writer_commits(
    store: Store,
) -> None:
    create_run(store, "a")
    assert store.flush()
    total = 10_000
    reads = threading.Semaphore(0)
    lengths_seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                series = store.costs("a")
                np.testing.assert_array_equal(series.batch, np.arange(len(series.batch)))
                expected = batch_values(0, len(series.batch))["costs"]
                np.testing.assert_array_equal(series.cost, expected)
                assert [run.id for run in store.runs()] == ["a"]
                lengths_seen.add(len(series.batch))
                reads.release()
        except BaseException as error:
            errors.append(error)
            reads.release()

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for first in range(0, total, 100):
            add_batches(store, "a", first, 100)
            assert reads.acquire(timeout=30), "the readers stopped reading"
            assert not errors, errors
            if first % 1000 == 0:  # commit now, whatever the writer's pace
                assert store.flush(timeout=60)
        assert store.flush(timeout=60)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert not errors, errors
    assert len(lengths_seen - {0, total}) >= 2, "the readers never read between two commits"
    assert len(store.costs("a").batch) == total


def test_a_failing_write_is_logged_once_and_the_writer_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.store")
    for first in range(0, 1000, 100):
        add_batches(store, "never created", first, 100)
    create_run(store, "a")
    add_batches(store, "a", 0, 100)
    assert not store.flush()  # some writes since the last flush failed
    assert store.flush()  # and none since
    assert len(store.costs("a").batch) == 100
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "mini-batches 0-99 of run never created" in errors[0].getMessage()
    assert "FOREIGN KEY" in errors[0].getMessage()
    recovered = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(recovered) == 1 and "10 writes were lost" in recovered[0].getMessage()


def test_a_full_disk_is_logged_once_and_training_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.store")
    create_run(store, "a")
    add_batches(store, "a", 0, 100)
    assert store.flush()
    # SQLite's own page limit gives the writer the very error a full disk does (SQLITE_FULL).
    # Set on the writer's connection while the writer waits for work; reaching in is the
    # price of not filling a real disk.
    writer_connection = store._writer._connection
    pages = writer_connection.execute("PRAGMA page_count").fetchone()[0]
    writer_connection.execute(f"PRAGMA max_page_count = {pages}")
    for first in range(100, 3100, 100):
        add_batches(store, "a", first, 100)
        store.save_weights("a", first, bytes(10_000))
    assert not store.flush(timeout=60)
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and "full" in errors[0].getMessage()
    writer_connection.execute("PRAGMA max_page_count = 1000000000")
    add_batches(store, "a", 100, 100)
    assert store.flush()
    np.testing.assert_array_equal(store.costs("a").batch, np.arange(200))
    recovered = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(recovered) == 1 and "60 writes were lost" in recovered[0].getMessage()


def test_close_commits_what_is_queued_and_is_idempotent(state_dir: Path) -> None:
    store = Store(state_dir)
    create_run(store, "a")
    add_batches(store, "a", 0, 1000)
    store.close()
    store.close()
    assert len(store.costs("a").batch) == 1000  # reads still work
    assert store.flush()
    with pytest.raises(StoreError, match="closed; cannot store mini-batches 1000-1099 of run a"):
        add_batches(store, "a", 1000, 100)
    with Store(state_dir) as reopened:
        assert len(reopened.costs("a").batch) == 1000


# kill -9 in the middle of writing.


def checked_blob(rng: np.random.Generator, size: int) -> bytes:
    payload = rng.bytes(size)
    return hashlib.sha256(payload).digest() + payload


def is_whole(blob: bytes) -> bool:
    return hashlib.sha256(blob[32:]).digest() == blob[:32]


def write_until_killed(state_dir: Path) -> None:
    """The crash test's child: trains pretend runs into the library as fast as a small
    network does, with the weights and resumable states, going back to epoch 2 after 5."""
    rng = np.random.default_rng()
    with Store(state_dir) as store:
        print("writing", flush=True)
        for number in itertools.count():
            run_id = f"{os.getpid()}-{number}"
            create_run(store, run_id, created_at=time.time())
            store.save_weights(run_id, 0, checked_blob(rng, 200_000))
            for epoch in [1, 2, 3, 4, 5, 3, 4, 5]:
                if epoch == 3:
                    store.truncate(run_id, 2 * 600)
                for first in range((epoch - 1) * 600, epoch * 600, 100):
                    add_batches(store, run_id, first, 100)
                    store.save_state(run_id, first + 100, checked_blob(rng, 50_000))
                    time.sleep(0.01)
                store.add_evaluation(run_id, epoch, epoch * 60_000, epoch * 1.0, 0.9, 0.1)
                store.save_weights(run_id, epoch, checked_blob(rng, 200_000))


def check_after_crash(state_dir: Path) -> int:
    """Asserts the library is whole; returns how many mini-batches it holds."""
    with inspect(state_dir) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        blobs = connection.execute(
            "SELECT checkpoint FROM weights UNION ALL SELECT checkpoint FROM states"
        ).fetchall()
    assert all(is_whole(blob) for (blob,) in blobs)
    with Store(state_dir) as store:
        return sum(check_committed_in_order(store, run.id) for run in store.runs())


def check_committed_in_order(store: Store, run_id: str) -> int:
    """What the child stored after something is there only if that something is: an epoch's
    evaluation after its batches, its weights after its evaluation, a state after its batches.
    Returns how many mini-batches the run holds."""
    series = store.costs(run_id)
    held = len(series.batch)
    np.testing.assert_array_equal(series.batch, np.arange(held), err_msg=run_id)
    last_examples = series.examples_seen[-1] if held else 0
    evaluations = store.evaluations(run_id)
    assert all(row.examples_seen <= last_examples for row in evaluations), run_id
    epochs_done = max((row.epoch for row in evaluations), default=0)
    assert set(store.weight_epochs(run_id)) <= set(range(epochs_done + 1)), run_id
    state = store.state(run_id)
    assert state is None or state[0] <= held, run_id
    run = store.run(run_id)
    assert run is not None and run.epochs_done == epochs_done, run_id
    return held


def test_kill_9_mid_write_never_leaves_the_library_unreadable(state_dir: Path) -> None:
    delays = [random.uniform(0.1, 1.5) for _ in range(5)]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    held = []
    for delay in delays:
        child = subprocess.Popen(
            [sys.executable, __file__, str(state_dir)],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == "writing\n", "the writing child did not start"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        child.stdout.close()
        held.append(check_after_crash(state_dir))
    # A kill may come before a child's first commit; not before all five children's.
    assert held[-1] > 0, f"kills after {delays} s left {held} mini-batches"


# Files that cannot be used: a clear StoreError, and the file left as it was.


def test_a_newer_schema_is_refused_and_left_as_it_was(state_dir: Path) -> None:
    Store(state_dir).close()
    with inspect(state_dir) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("99",))
    with pytest.raises(StoreError) as refused:
        Store(state_dir)
    message = str(refused.value)
    assert "newer backprop-live" in message and "schema version 99" in message
    assert str(state_dir / DB_FILE) in message
    with inspect(state_dir) as connection:
        assert connection.execute("SELECT value FROM meta").fetchall() == [("99",)]


def test_a_damaged_schema_version_is_refused(state_dir: Path) -> None:
    Store(state_dir).close()
    with inspect(state_dir) as connection:
        connection.execute("UPDATE meta SET value = 'one' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=r"damaged schema_version \('one'\)"):
        Store(state_dir)


def test_a_corrupt_file_is_refused_and_left_as_it_was(state_dir: Path) -> None:
    state_dir.mkdir()
    garbage = np.random.default_rng(11).bytes(64 * 1024)
    (state_dir / DB_FILE).write_bytes(garbage)
    with pytest.raises(StoreError) as refused:
        Store(state_dir)
    assert "is not a SQLite database or it is damaged" in str(refused.value)
    assert str(state_dir / DB_FILE) in str(refused.value)
    assert (state_dir / DB_FILE).read_bytes() == garbage


def test_another_programs_database_is_refused(state_dir: Path) -> None:
    state_dir.mkdir()
    with inspect(state_dir) as connection:
        connection.execute("CREATE TABLE invoices (number INTEGER)")
    with pytest.raises(StoreError, match=r"not a backprop-live run library \(tables: invoices\)"):
        Store(state_dir)


def test_a_state_dir_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    # Under a regular file rather than in a read-only directory: these tests run as root,
    # which writes through any permission bits.
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(StoreError) as refused:
        Store(tmp_path / "a-file" / "state")
    assert f"cannot create the state directory {tmp_path / 'a-file' / 'state'}" in str(
        refused.value
    )


def test_a_library_path_that_cannot_be_opened_is_refused(state_dir: Path) -> None:
    (state_dir / DB_FILE).mkdir(parents=True)
    with pytest.raises(StoreError, match="cannot open the run library .*" + DB_FILE):
        Store(state_dir)


# Migrations.


def schema_version(state_dir: Path) -> int:
    with inspect(state_dir) as connection:
        (value,) = connection.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
    return int(value)


def test_there_is_one_migration_step_per_version() -> None:
    assert len(store_module.MIGRATIONS) == SCHEMA_VERSION


def test_an_empty_file_is_version_0_and_migrated_to_the_current_one(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / DB_FILE).touch()
    with Store(state_dir) as store:
        create_run(store, "a")
        assert store.flush()
    assert schema_version(state_dir) == SCHEMA_VERSION
    with Store(state_dir) as store:  # opening it again migrates nothing
        assert [run.id for run in store.runs()] == ["a"]


def add_tags(connection: sqlite3.Connection) -> None:
    connection.execute("ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT ''")


def fail_midway(connection: sqlite3.Connection) -> None:
    connection.execute("CREATE TABLE half_done (x INTEGER)")
    raise sqlite3.OperationalError("the step broke halfway")


def test_an_older_file_is_migrated_step_by_step_keeping_its_runs(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(state_dir) as store:
        create_run(store, "a")
        add_batches(store, "a", 0, 10)
    steps_run = []

    def count_runs(connection: sqlite3.Connection) -> None:
        steps_run.append(connection.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    migrations = [*store_module.MIGRATIONS, add_tags, count_runs]
    monkeypatch.setattr(store_module, "MIGRATIONS", migrations)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    with Store(state_dir) as store:
        assert len(store.costs("a").batch) == 10
    assert schema_version(state_dir) == SCHEMA_VERSION + 2
    assert steps_run == [1]
    with inspect(state_dir) as connection:
        assert connection.execute("SELECT id, tags FROM runs").fetchall() == [("a", "")]


def test_a_failing_migration_leaves_the_file_as_it_was(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(state_dir) as store:
        create_run(store, "a")
    monkeypatch.setattr(
        store_module, "MIGRATIONS", [*store_module.MIGRATIONS, add_tags, fail_midway]
    )
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    expected = f"from schema version {SCHEMA_VERSION + 1} to {SCHEMA_VERSION + 2} .*halfway"
    with pytest.raises(StoreError, match=expected):
        Store(state_dir)
    assert schema_version(state_dir) == SCHEMA_VERSION
    with inspect(state_dir) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        columns = [row[1] for row in connection.execute("PRAGMA table_info(runs)")]
    assert "half_done" not in tables and "tags" not in columns


# The room's gallery (schema version 2).


def drawing(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 784, dtype=np.uint8).tobytes()


def test_a_version_1_library_gains_the_gallery_and_keeps_its_runs(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as version_1:
        version_1.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
        version_1.setattr(store_module, "SCHEMA_VERSION", 1)
        with Store(state_dir) as store:
            create_old_run(state_dir, "a")
            add_batches(store, "a", 0, 10)
    assert schema_version(state_dir) == 1
    with inspect(state_dir) as connection:
        assert "gallery" not in {
            row[0] for row in connection.execute("SELECT name FROM sqlite_master")
        }

    with Store(state_dir) as store:
        assert schema_version(state_dir) == SCHEMA_VERSION
        assert [run.id for run in store.runs()] == ["a"]
        assert len(store.costs("a").batch) == 10
        assert store.gallery() == []
        drawing_id = store.add_drawing(7, drawing(1), "Ada", 1.5e9)
        assert [(row.id, row.label, row.pixels) for row in store.gallery()] == [
            (drawing_id, 7, drawing(1))
        ]


def test_a_drawing_is_committed_when_add_drawing_returns(store: Store, state_dir: Path) -> None:
    first = store.add_drawing(3, drawing(1), None, 100.0)
    second = store.add_drawing(5, drawing(2), "Émile", 101.0)
    with inspect(state_dir) as other_connection:  # another process would see them too
        rows = other_connection.execute(
            "SELECT id, label, pixels, author, created_at, hidden FROM gallery ORDER BY id"
        ).fetchall()
    assert rows == [
        (first, 3, drawing(1), None, 100.0, 0),
        (second, 5, drawing(2), "Émile", 101.0, 0),
    ]
    assert second > first


def test_drawings_are_hidden_shown_and_deleted_by_id(store: Store) -> None:
    ids = [store.add_drawing(digit, drawing(digit), None, float(digit)) for digit in range(4)]
    assert store.set_drawing_hidden(ids[1], True)
    assert [row.hidden for row in store.gallery()] == [False, True, False, False]
    assert store.set_drawing_hidden(ids[1], False)
    assert not any(row.hidden for row in store.gallery())
    assert store.delete_drawing(ids[2])
    assert [row.id for row in store.gallery()] == [ids[0], ids[1], ids[3]]
    assert not store.delete_drawing(ids[2]) and not store.set_drawing_hidden(ids[2], True)
    assert store.clear_gallery() == 3
    assert store.gallery() == []


def test_a_deleted_drawings_id_is_never_given_again(store: Store) -> None:
    ids = [store.add_drawing(1, drawing(seed), None, 0.0) for seed in range(3)]
    store.delete_drawing(ids[-1])
    store.clear_gallery()
    assert store.add_drawing(1, drawing(9), None, 0.0) > max(ids)


@pytest.mark.parametrize(("label", "pixels"), [(10, drawing(0)), (-1, drawing(0)), (3, b"short")])
def test_the_schema_refuses_what_is_not_a_drawing(store: Store, label: int, pixels: bytes) -> None:
    with pytest.raises(StoreError, match="cannot write the run library"):
        store.add_drawing(label, pixels, None, 0.0)
    assert store.gallery() == []


def test_drawings_commit_while_the_writer_thread_stores_a_training_run(store: Store) -> None:
    create_run(store, "busy")
    for first in range(0, 30_000, 100):  # queued: the writer commits them meanwhile
        add_batches(store, "busy", first, 100)
    ids = [store.add_drawing(seed % 10, drawing(seed), None, 0.0) for seed in range(10)]
    assert [row.id for row in store.gallery()] == ids
    assert store.flush(timeout=120)
    assert len(store.costs("busy").batch) == 30_000


if __name__ == "__main__":
    write_until_killed(Path(sys.argv[1]))


# Races' lanes (schema version 3).


def test_a_version_2_library_gains_race_tags_and_keeps_its_runs(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as version_2:
        version_2.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
        version_2.setattr(store_module, "SCHEMA_VERSION", 2)
        with Store(state_dir):
            create_old_run(state_dir, "a")
    assert schema_version(state_dir) == 2

    with Store(state_dir) as store:
        assert schema_version(state_dir) == SCHEMA_VERSION
        assert [(run.id, run.race) for run in store.runs()] == [("a", None)]
        store.create_run("lane", "batch 1", {}, "sample", 200.0, race=RaceTag("r1", 1, "batch 1"))
        assert store.flush()
        assert [run.race for run in store.runs(race="r1")] == [RaceTag("r1", 1, "batch 1")]
        assert store.runs(race="another") == []


def test_the_latest_run_to_restore_is_never_a_lane_of_a_race(store: Store) -> None:
    store.create_run("single", "one", {}, "sample", 100.0)
    store.create_run("lane", "batch 1", {}, "sample", 200.0, race=RaceTag("r1", 0, "batch 1"))
    assert store.flush()
    assert store.latest_run_id() == "single"
