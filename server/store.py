"""The run library's database: every run, its mini-batch costs, evaluations and checkpoints,
and the room's gallery of drawings.

One SQLite file in the state directory, in WAL mode: readers (the web process, the CLI) never
wait for the writer, and a kill -9 at any moment leaves every committed transaction whole.
Writes come from the trainer, which must never wait for a disk, so they are queued to one
writer thread that commits them a group at a time, in the order they were made. Reads open
short-lived connections of their own, from any thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

log = logging.getLogger(__name__)

DB_FILE = "backprop-live.sqlite3"
SCHEMA_VERSION = 3
COMMIT_INTERVAL = 0.2  # seconds a queued write may wait for others to share its transaction
COMMIT_WRITES = 256  # ...unless this many are queued: then they commit at once
LOCK_TIMEOUT = 30.0  # seconds to wait while another process (train --record) holds the lock
NORM_DTYPE = np.dtype("<f8")

# One value per mini-batch: a list, or the trainer's NumPy buffer as it is.
Floats: TypeAlias = "Sequence[float] | np.ndarray"
Ints: TypeAlias = "Sequence[int] | np.ndarray"
FloatRows: TypeAlias = "Sequence[Sequence[float]] | np.ndarray"

SCHEMA = """
-- What this file is: 'schema_version' counts the migrations it has been through.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per run, with a summary kept up to date as it trains, so that listing a thousand
-- runs reads this table alone.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    config        TEXT NOT NULL,               -- JSON
    dataset       TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,               -- Unix seconds
    updated_at    REAL NOT NULL,
    examples_seen INTEGER NOT NULL DEFAULT 0,
    seconds       REAL NOT NULL DEFAULT 0,     -- wall seconds spent training
    epochs_done   INTEGER NOT NULL DEFAULT 0,  -- the latest evaluation's epoch
    test_accuracy REAL,                        -- the latest evaluation's; NULL before one
    test_cost     REAL
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_updated ON runs (updated_at);

-- Every mini-batch a run trained, indexed from 0 across epochs.
CREATE TABLE batches (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    batch          INTEGER NOT NULL,
    examples_seen  INTEGER NOT NULL,           -- when this mini-batch ended
    seconds        REAL NOT NULL,              -- wall seconds trained when it ended
    cost           REAL,                       -- NULL where not finite
    gradient_norms BLOB NOT NULL,              -- one little-endian float64 per layer
    PRIMARY KEY (run_id, batch)
) WITHOUT ROWID;

-- Test-set scores, one per point in training; `epoch` counts the epochs completed then.
CREATE TABLE evaluations (
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    examples_seen INTEGER NOT NULL,
    epoch         INTEGER NOT NULL,
    seconds       REAL NOT NULL,
    accuracy      REAL NOT NULL,
    cost          REAL,                        -- NULL where not finite
    PRIMARY KEY (run_id, examples_seen)
) WITHOUT ROWID;

-- The checkpoint (.npz bytes) at the end of each epoch; epoch 0 holds the initial weights.
CREATE TABLE weights (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    checkpoint BLOB NOT NULL,
    PRIMARY KEY (run_id, epoch)
);

-- The latest checkpoint to resume a run from, replaced as it trains.
CREATE TABLE states (
    run_id     TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    next_batch INTEGER NOT NULL,               -- mini-batches trained when it was taken
    checkpoint BLOB NOT NULL
);
"""

# Version 2: the room's drawings (the gallery), kept across runs and restarts.
GALLERY_SCHEMA = """
-- One row per drawing a student sent to the board, as the network sees it: 28x28 bytes,
-- row by row, 0 = no ink (MNIST's own format). AUTOINCREMENT: an id is never reused, so it
-- names one drawing for good (its thumbnail's URL, its half of the split).
CREATE TABLE gallery (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    label      INTEGER NOT NULL CHECK (label BETWEEN 0 AND 9),  -- the digit its author meant
    pixels     BLOB NOT NULL CHECK (length(pixels) = 784),
    author     TEXT,                                -- a first name, or NULL
    created_at REAL NOT NULL,                       -- Unix seconds
    hidden     INTEGER NOT NULL DEFAULT 0           -- 1: moderated away, shown to nobody
);
"""

GALLERY_COLUMNS = "id, label, pixels, author, created_at, hidden"

RUN_COLUMNS = (
    "id, name, config, dataset, status, created_at, updated_at, "
    "examples_seen, seconds, epochs_done, test_accuracy, test_cost, race_id, race_lane, race_label"
)

# Schema version 3: a run may be a lane of a race (server.trainer.race).
RACE_COLUMNS = """
ALTER TABLE runs ADD COLUMN race_id TEXT;     -- NULL: not a lane of a race
ALTER TABLE runs ADD COLUMN race_lane INTEGER;
ALTER TABLE runs ADD COLUMN race_label TEXT;
CREATE INDEX runs_by_race ON runs (race_id);
"""


@dataclass(frozen=True)
class RaceTag:
    """Which race a run was a lane of: the race's id, the lane's index and its label."""

    id: str
    lane: int
    label: str


class StoreError(Exception):
    """The run library cannot be opened or read; the message says what and where."""


@dataclass(frozen=True)
class RunRow:
    """One run as the library lists it."""

    id: str
    name: str
    config: dict[str, Any]
    dataset: str
    status: str
    created_at: float  # Unix seconds
    updated_at: float
    examples_seen: int
    seconds: float
    epochs_done: int
    test_accuracy: float | None  # the latest evaluation's
    test_cost: float | None
    race: RaceTag | None = None


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare by
class CostSeries:
    """Every stored mini-batch of a run, in batch order."""

    batch: np.ndarray  # int64
    examples_seen: np.ndarray  # int64
    cost: np.ndarray  # float64, NaN where not finite
    seconds: np.ndarray  # float64: wall seconds trained when that batch ended
    gradient_norms: np.ndarray  # float64, shape [batches, layers]


@dataclass(frozen=True)
class GalleryRow:
    """One drawing of the room's gallery."""

    id: int
    label: int
    pixels: bytes  # 784 bytes, 28x28 row by row, 0 = no ink
    author: str | None
    created_at: float  # Unix seconds
    hidden: bool


@dataclass(frozen=True)
class EvalRow:
    """One test-set evaluation of a run."""

    epoch: int
    examples_seen: int
    seconds: float
    accuracy: float
    cost: float | None


class Store:
    """The run library in ``directory``: queued writes, direct reads.

    Close it (or use it in a ``with``) so that the writes still queued are committed.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory).resolve() / DB_FILE
        _make_directory(self.path.parent)
        self._writer = _Writer(_open_for_writing(self.path), str(self.path))

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Writes: queued, in order; they return at once.

    def create_run(
        self,
        run_id: str,
        name: str,
        config: dict[str, Any],
        dataset: str,
        created_at: float,
        status: str = "paused",
        race: RaceTag | None = None,
    ) -> None:
        """A new run, paused unless ``status`` says otherwise; ``updated_at`` = ``created_at``;
        ``race``: the race it is a lane of."""
        row = (
            run_id,
            name,
            json.dumps(config),
            dataset,
            status,
            float(created_at),
            float(created_at),
            *((race.id, race.lane, race.label) if race else (None, None, None)),
        )
        self._writer.put(f"the new run {run_id}", _insert_run, row)

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        examples_seen: int | None = None,
        seconds: float | None = None,
        name: str | None = None,
    ) -> None:
        """Change the given fields (None leaves one as it is) and set ``updated_at`` to now."""
        changes: dict[str, Any] = {"status": status, "name": name}
        changes["examples_seen"] = None if examples_seen is None else int(examples_seen)
        changes["seconds"] = None if seconds is None else float(seconds)
        changes = {column: value for column, value in changes.items() if value is not None}
        changes["updated_at"] = time.time()
        self._writer.put(f"an update of run {run_id}", _update_run, run_id, changes)

    def rename_run(self, run_id: str, name: str) -> None:
        """Give the run a new name. ``updated_at`` stays as it is: it says when the run last
        trained, and a restarted server resumes the run that trained last."""
        self._writer.put(f"renaming run {run_id}", _rename_run, run_id, str(name))

    def add_batches(
        self,
        run_id: str,
        first_batch: int,
        costs: Floats,
        examples_seen: Ints,
        seconds: Floats,
        gradient_norms: FloatRows,
    ) -> None:
        """Mini-batches ``first_batch``, ``first_batch + 1``, ...; one that is already stored
        is replaced. Raises ValueError at once if the sequences differ in length."""
        rows = _batch_rows(run_id, first_batch, costs, examples_seen, seconds, gradient_norms)
        if not rows:
            return
        what = f"mini-batches {first_batch}-{first_batch + len(rows) - 1} of run {run_id}"
        self._writer.put(what, _insert_batches, rows)

    def add_evaluation(
        self,
        run_id: str,
        epoch: int,
        examples_seen: int,
        seconds: float,
        accuracy: float,
        cost: float | None,
    ) -> None:
        row = (
            run_id,
            int(examples_seen),
            int(epoch),
            float(seconds),
            float(accuracy),
            _finite_or_none(cost),
        )
        self._writer.put(f"the epoch {epoch} evaluation of run {run_id}", _insert_evaluation, row)

    def save_weights(self, run_id: str, epoch: int, blob: bytes) -> None:
        """The checkpoint at the end of epoch ``epoch`` (0: the initial weights)."""
        row = (run_id, int(epoch), bytes(blob))
        self._writer.put(f"the epoch {epoch} weights of run {run_id}", _upsert_weights, row)

    def save_state(self, run_id: str, batch: int, blob: bytes) -> None:
        """The checkpoint to resume from, taken after ``batch`` mini-batches (a count)."""
        row = (run_id, int(batch), bytes(blob))
        self._writer.put(f"the resumable state of run {run_id}", _upsert_state, row)

    def truncate(self, run_id: str, next_batch: int) -> None:
        """Forget what run ``run_id`` did from mini-batch ``next_batch`` on: those batches,
        the evaluations after the last one kept, the weights of epochs it had not finished by
        then, and a resumable state taken later. The run then continues from there."""
        what = f"truncating run {run_id} at mini-batch {next_batch}"
        self._writer.put(what, _truncate, run_id, int(next_batch))

    def delete_run(self, run_id: str) -> None:
        """The run and everything stored with it."""
        self._writer.put(f"deleting run {run_id}", _delete_run, run_id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every write queued so far has been committed. False if that took longer
        than ``timeout`` seconds, or if a write since the last flush failed (the log says
        which)."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Commit what is queued and stop the writer. Later writes raise StoreError; reads
        still work."""
        self._writer.close()

    # Reads: on a connection of their own, never waiting for the writer.

    def runs(self, race: str | None = None) -> list[RunRow]:
        """Every run, newest first; ``race``: only that race's lanes, in lane order."""
        with self._reading() as connection:
            if race is None:
                query = f"SELECT {RUN_COLUMNS} FROM runs ORDER BY created_at DESC, id"
                rows = connection.execute(query).fetchall()
            else:
                query = f"SELECT {RUN_COLUMNS} FROM runs WHERE race_id = ? ORDER BY race_lane"
                rows = connection.execute(query, (race,)).fetchall()
        return [_run_row(row) for row in rows]

    def run(self, run_id: str) -> RunRow | None:
        with self._reading() as connection:
            row = connection.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        return None if row is None else _run_row(row)

    def latest_run_id(self) -> str | None:
        """The run updated most recently, not counting the lanes of races: a server stopped
        during a race comes back with the run live before it."""
        with self._reading() as connection:
            row = connection.execute(
                "SELECT id FROM runs WHERE race_id IS NULL "
                "ORDER BY updated_at DESC, created_at DESC LIMIT 1"
            ).fetchone()
        return None if row is None else row[0]

    def costs(self, run_id: str) -> CostSeries:
        query = (
            "SELECT batch, examples_seen, cost, seconds, gradient_norms FROM batches "
            "WHERE run_id = ? ORDER BY batch"
        )
        with self._reading() as connection:
            rows = connection.execute(query, (run_id,)).fetchall()
        return _cost_series(rows)

    def evaluations(self, run_id: str) -> list[EvalRow]:
        """The run's evaluations in training order."""
        query = (
            "SELECT epoch, examples_seen, seconds, accuracy, cost FROM evaluations "
            "WHERE run_id = ? ORDER BY examples_seen"
        )
        with self._reading() as connection:
            rows = connection.execute(query, (run_id,)).fetchall()
        return [EvalRow(*row) for row in rows]

    def weights(self, run_id: str, epoch: int) -> bytes | None:
        """The checkpoint at the end of epoch ``epoch``, if it is stored."""
        with self._reading() as connection:
            row = connection.execute(
                "SELECT checkpoint FROM weights WHERE run_id = ? AND epoch = ?", (run_id, epoch)
            ).fetchone()
        return None if row is None else row[0]

    def weight_epochs(self, run_id: str) -> list[int]:
        with self._reading() as connection:
            rows = connection.execute(
                "SELECT epoch FROM weights WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return [epoch for (epoch,) in rows]

    def state(self, run_id: str) -> tuple[int, bytes] | None:
        """(mini-batches trained, checkpoint) of the run's latest resumable state."""
        with self._reading() as connection:
            row = connection.execute(
                "SELECT next_batch, checkpoint FROM states WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    # The room's gallery. Its writes are few and an HTTP answer waits for each (the new id, or
    # whether the drawing was there), so they commit on a connection of their own before they
    # return, instead of joining the writer's queue.

    def gallery(self) -> list[GalleryRow]:
        """Every drawing, hidden ones too, oldest first."""
        query = f"SELECT {GALLERY_COLUMNS} FROM gallery ORDER BY id"
        with self._reading() as connection:
            rows = connection.execute(query).fetchall()
        return [_gallery_row(row) for row in rows]

    def add_drawing(self, label: int, pixels: bytes, author: str | None, created_at: float) -> int:
        """Store a drawing (784 bytes); returns its id once it is committed."""
        with self._writing() as connection:
            cursor = connection.execute(
                "INSERT INTO gallery (label, pixels, author, created_at) VALUES (?, ?, ?, ?)",
                (int(label), bytes(pixels), author, float(created_at)),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def set_drawing_hidden(self, drawing_id: int, hidden: bool) -> bool:
        """Hide or show a drawing; False if there is none with that id."""
        with self._writing() as connection:
            cursor = connection.execute(
                "UPDATE gallery SET hidden = ? WHERE id = ?", (int(hidden), drawing_id)
            )
        return cursor.rowcount > 0

    def delete_drawing(self, drawing_id: int) -> bool:
        """False if there is no drawing with that id."""
        with self._writing() as connection:
            cursor = connection.execute("DELETE FROM gallery WHERE id = ?", (drawing_id,))
        return cursor.rowcount > 0

    def clear_gallery(self) -> int:
        """Delete every drawing; returns how many there were."""
        with self._writing() as connection:
            cursor = connection.execute("DELETE FROM gallery")
        return cursor.rowcount

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction on a connection of its own, committed when the block ends. It waits
        for the writer thread's transaction in progress, if any (a fraction of a second)."""
        try:
            connection = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the run library {self.path}: {error}") from error
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield connection
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the run library {self.path}: {error}") from error
        finally:
            connection.close()  # closing without a COMMIT rolls back

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(
                f"{self.path.as_uri()}?mode=rw", uri=True, timeout=LOCK_TIMEOUT
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the run library {self.path}: {error}") from error
        try:
            connection.execute("PRAGMA query_only = ON")
            yield connection
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the run library {self.path}: {error}") from error
        finally:
            connection.close()


# Opening and migrating.


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(
            f"cannot create the state directory {directory} for the run library: "
            f"{error.strerror or error}"
        ) from error


def _open_for_writing(path: Path) -> sqlite3.Connection:
    """The writer's connection, with the schema brought up to date."""
    try:
        connection = sqlite3.connect(
            path, timeout=LOCK_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise StoreError(f"cannot open the run library {path}: {error}") from error
    try:
        _configure(connection, path)
        _migrate(connection, path)
    except sqlite3.OperationalError as error:
        connection.close()
        raise StoreError(f"cannot write the run library {path}: {error}") from error
    except sqlite3.DatabaseError as error:
        connection.close()
        raise StoreError(
            f"{path} is not a SQLite database or it is damaged ({error}); move it aside "
            "to start a new run library"
        ) from error
    except StoreError:
        connection.close()
        raise
    return connection


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    journal_mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if journal_mode != "wal":
        log.warning("the run library %s cannot use WAL here; using %s", path, journal_mode)
    connection.execute("PRAGMA foreign_keys = ON")
    # NORMAL is durable across a crash of the program (kill -9) in WAL mode; only a power
    # cut may lose the last commits, and never leaves the file damaged.
    connection.execute("PRAGMA synchronous = NORMAL")


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Run the migrations this file lacks, in one transaction: all of them or none."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(connection, path)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the run library {path} was written by a newer backprop-live (schema "
                f"version {version}; this one reads up to {SCHEMA_VERSION}): upgrade "
                "backprop-live, or use another --state-dir"
            )
        for step in range(version, SCHEMA_VERSION):
            _migrate_step(connection, path, step, version)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _migrate_step(connection: sqlite3.Connection, path: Path, step: int, version: int) -> None:
    try:
        MIGRATIONS[step](connection)
    except sqlite3.Error as error:
        raise StoreError(
            f"could not migrate the run library {path} from schema version {step} to "
            f"{step + 1} ({error}); it is left as it was, at version {version}"
        ) from error
    connection.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(step + 1),)
    )


def _schema_version(connection: sqlite3.Connection, path: Path) -> int:
    """0 for an empty file; refuses a database that is someone else's."""
    tables = {
        name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if "meta" in tables:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0].isdigit():
            return int(row[0])
        if row is not None:
            raise StoreError(f"{path} has a damaged schema_version ({row[0]!r}) in its meta table")
    if tables:
        raise StoreError(
            f"{path} holds a database that is not a backprop-live run library "
            f"(tables: {', '.join(sorted(tables))}); move it aside or use another --state-dir"
        )
    return 0


def _sql_statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one (executescript would commit on its own)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _create_schema(connection: sqlite3.Connection) -> None:
    for statement in _sql_statements(SCHEMA):
        connection.execute(statement)


def _create_gallery(connection: sqlite3.Connection) -> None:
    for statement in _sql_statements(GALLERY_SCHEMA):
        connection.execute(statement)


def _add_race_columns(connection: sqlite3.Connection) -> None:
    for statement in _sql_statements(RACE_COLUMNS):
        connection.execute(statement)


# MIGRATIONS[v] takes a file from schema version v to v + 1 (0 is an empty file), so a new file
# runs them all. A new version appends a step here, with the SQL it adds; the steps already
# written stay as they are, since files at their versions exist.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _create_schema,
    _create_gallery,
    _add_race_columns,
]


# The writes, each run by the writer thread inside a transaction.


def _insert_run(connection: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    connection.execute(
        "INSERT INTO runs (id, name, config, dataset, status, created_at, updated_at, "
        "race_id, race_lane, race_label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


def _update_run(connection: sqlite3.Connection, run_id: str, changes: dict[str, Any]) -> None:
    # The column names come from update_run's own keywords, never from its callers' values.
    assignments = ", ".join(f"{column} = ?" for column in changes)
    connection.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*changes.values(), run_id))


def _rename_run(connection: sqlite3.Connection, run_id: str, name: str) -> None:
    connection.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))


def _insert_batches(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    connection.executemany(
        "INSERT OR REPLACE INTO batches "
        "(run_id, batch, examples_seen, seconds, cost, gradient_norms) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )


def _insert_evaluation(connection: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO evaluations "
        "(run_id, examples_seen, epoch, seconds, accuracy, cost) VALUES (?, ?, ?, ?, ?, ?)",
        row,
    )
    _refresh_latest_evaluation(connection, row[0])


def _refresh_latest_evaluation(connection: sqlite3.Connection, run_id: str) -> None:
    connection.execute(
        """
        UPDATE runs SET
            epochs_done = COALESCE((SELECT MAX(epoch) FROM evaluations WHERE run_id = :id), 0),
            test_accuracy = (SELECT accuracy FROM evaluations WHERE run_id = :id
                             ORDER BY examples_seen DESC LIMIT 1),
            test_cost = (SELECT cost FROM evaluations WHERE run_id = :id
                         ORDER BY examples_seen DESC LIMIT 1)
        WHERE id = :id
        """,
        {"id": run_id},
    )


def _upsert_weights(connection: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO weights (run_id, epoch, checkpoint) VALUES (?, ?, ?)", row
    )


def _upsert_state(connection: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO states (run_id, next_batch, checkpoint) VALUES (?, ?, ?)", row
    )


def _truncate(connection: sqlite3.Connection, run_id: str, next_batch: int) -> None:
    """An epoch's weights are kept while its end-of-epoch evaluation is: both were taken at
    the same point, and only the evaluation says how many examples that point is."""
    last_kept = connection.execute(
        "SELECT examples_seen, seconds FROM batches WHERE run_id = ? AND batch < ? "
        "ORDER BY batch DESC LIMIT 1",
        (run_id, next_batch),
    ).fetchone()
    examples_seen, seconds = last_kept or (0, 0.0)
    connection.execute("DELETE FROM batches WHERE run_id = ? AND batch >= ?", (run_id, next_batch))
    connection.execute(
        "DELETE FROM evaluations WHERE run_id = ? AND examples_seen > ?", (run_id, examples_seen)
    )
    (epochs_done,) = connection.execute(
        "SELECT COALESCE(MAX(epoch), 0) FROM evaluations WHERE run_id = ?", (run_id,)
    ).fetchone()
    connection.execute("DELETE FROM weights WHERE run_id = ? AND epoch > ?", (run_id, epochs_done))
    connection.execute(
        "DELETE FROM states WHERE run_id = ? AND next_batch > ?", (run_id, next_batch)
    )
    connection.execute(
        "UPDATE runs SET examples_seen = ?, seconds = ? WHERE id = ?",
        (examples_seen, seconds, run_id),
    )
    _refresh_latest_evaluation(connection, run_id)


def _delete_run(connection: sqlite3.Connection, run_id: str) -> None:
    connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))  # the rest cascades


# Conversions between Python values and rows.


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _batch_rows(
    run_id: str,
    first_batch: int,
    costs: Floats,
    examples_seen: Ints,
    seconds: Floats,
    gradient_norms: FloatRows,
) -> list[tuple[Any, ...]]:
    """Rows copied out of the caller's sequences (which it may reuse as buffers)."""
    lengths = {len(costs), len(examples_seen), len(seconds), len(gradient_norms)}
    if len(lengths) != 1:
        raise ValueError(
            f"add_batches needs one value per mini-batch in each sequence; got {len(costs)} "
            f"costs, {len(examples_seen)} examples_seen, {len(seconds)} seconds and "
            f"{len(gradient_norms)} gradient_norms"
        )
    if len(costs) == 0:
        return []
    first_batch = int(first_batch)
    norms = np.asarray(gradient_norms, dtype=NORM_DTYPE)
    if norms.ndim != 2:
        raise ValueError("add_batches needs gradient_norms as one sequence of floats per batch")
    return [
        (run_id, first_batch + offset, int(seen), float(second), _finite_or_none(cost), norm)
        for offset, (cost, seen, second, norm) in enumerate(
            zip(costs, examples_seen, seconds, (row.tobytes() for row in norms))
        )
    ]


def _run_row(row: tuple[Any, ...]) -> RunRow:
    values = list(row[:-3])
    values[2] = json.loads(values[2])
    race_id, lane, label = row[-3:]
    values.append(None if race_id is None else RaceTag(race_id, lane, label))
    return RunRow(*values)


def _gallery_row(row: tuple[Any, ...]) -> GalleryRow:
    drawing_id, label, pixels, author, created_at, hidden = row
    return GalleryRow(drawing_id, label, pixels, author, created_at, bool(hidden))


def _cost_series(rows: list[tuple[Any, ...]]) -> CostSeries:
    batch, examples_seen, cost, seconds, norms = zip(*rows) if rows else ((),) * 5
    return CostSeries(
        batch=np.array(batch, dtype=np.int64),
        examples_seen=np.array(examples_seen, dtype=np.int64),
        cost=np.array(cost, dtype=np.float64),  # NULL (None) becomes NaN
        seconds=np.array(seconds, dtype=np.float64),
        gradient_norms=_stack_norms(norms),
    )


def _stack_norms(blobs: Sequence[bytes]) -> np.ndarray:
    """One row per blob; NaN-padded if a run's layer count ever changed between batches."""
    widths = {len(blob) // NORM_DTYPE.itemsize for blob in blobs}
    if len(widths) <= 1:
        width = widths.pop() if widths else 0
        flat = np.frombuffer(b"".join(blobs), dtype=NORM_DTYPE)
        return flat.reshape(len(blobs), width).astype(np.float64)
    stacked = np.full((len(blobs), max(widths)), np.nan)
    for row, blob in zip(stacked, blobs):
        values = np.frombuffer(blob, dtype=NORM_DTYPE)
        row[: len(values)] = values
    return stacked


# The writer thread.


@dataclass
class _Write:
    what: str  # for the log, e.g. "mini-batches 100-199 of run abc"
    apply: Callable[..., None]
    arguments: tuple[Any, ...]


@dataclass
class _Flush:
    """A marker in the queue: everything before it has been handled when ``done`` is set."""

    stop: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    committed: bool = False


class _Writer:
    """One thread that commits queued writes in order, a group of them per transaction.

    A write that fails (a full disk, a run deleted meanwhile) is logged and dropped; training
    goes on. A run of failures with the same cause is logged once, and once more when writes
    succeed again, with how many were lost.
    """

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        self._connection = connection
        self._path = path
        self._queue: queue.SimpleQueue[_Write | _Flush] = queue.SimpleQueue()
        self._closing = threading.Lock()
        self._closed = False
        self._failing_with: str | None = None  # the message of the failures being counted
        self._lost = 0  # writes dropped since writing last succeeded
        self._failed_since_flush = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def put(self, what: str, apply: Callable[..., None], *arguments: Any) -> None:
        with self._closing:
            if self._closed:
                raise StoreError(f"the run library {self._path} is closed; cannot store {what}")
            self._queue.put(_Write(what, apply, arguments))

    def flush(self, timeout: float) -> bool:
        marker = _Flush()
        with self._closing:
            if self._closed:
                return True  # closing flushed everything
            self._queue.put(marker)
        return marker.done.wait(timeout) and marker.committed

    def close(self) -> None:
        marker = _Flush(stop=True)
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._queue.put(marker)
        self._thread.join()

    def _run(self) -> None:
        marker = None
        while marker is None or not marker.stop:
            writes, marker = self._take_writes()
            if writes:
                self._commit(writes)
            if marker is not None:
                marker.committed = not self._failed_since_flush
                self._failed_since_flush = False
                marker.done.set()
        self._connection.close()

    def _take_writes(self) -> tuple[list[_Write], _Flush | None]:
        """Writes until a marker, COMMIT_WRITES of them, or COMMIT_INTERVAL after the first."""
        writes: list[_Write] = []
        deadline = math.inf
        while len(writes) < COMMIT_WRITES:
            wait = None if not writes else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                break
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                break
            if isinstance(item, _Flush):
                return writes, item
            writes.append(item)
            deadline = min(deadline, time.monotonic() + COMMIT_INTERVAL)
        return writes, None

    def _commit(self, writes: list[_Write]) -> None:
        try:
            self._transaction(writes)
        except Exception:
            for write in writes:  # find the ones that fail; keep the others
                self._commit_alone(write)
        else:
            self._succeeded()

    def _commit_alone(self, write: _Write) -> None:
        try:
            self._transaction([write])
        except Exception as error:
            self._failed(write, error)
        else:
            self._succeeded()

    def _transaction(self, writes: list[_Write]) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                write.apply(connection, *write.arguments)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            raise

    def _failed(self, write: _Write, error: Exception) -> None:
        self._lost += 1
        self._failed_since_flush = True
        if str(error) == self._failing_with:
            return
        self._failing_with = str(error)
        log.error(
            "could not store %s in the run library %s: %s (training goes on; writes that fail "
            "the same way are not logged until one succeeds)",
            write.what,
            self._path,
            error,
            exc_info=not isinstance(error, sqlite3.Error),
        )

    def _succeeded(self) -> None:
        if self._failing_with is None:
            return
        log.warning(
            "the run library %s is being written again; %d writes were lost before",
            self._path,
            self._lost,
        )
        self._failing_with = None
        self._lost = 0
