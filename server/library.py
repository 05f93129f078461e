"""The run library as people read it: the answers of GET /api/runs and GET /api/runs/{id}, a
run's cost curve down-sampled by averaging, the stored network of any epoch, and the CSV
exports. The HTTP routes and the `backprop-live runs` command both read it; it imports no web
framework.

Times are ISO 8601 in UTC. A run's ``status`` is what it was doing when it was last written,
except that where the live run is known (the server), a run that is not the live one is
``paused``, not ``running``: a server stopped by a kill, or a run replaced while it trained,
leaves ``running`` in its row.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import math
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.checkpoint import CheckpointError, load_checkpoint
from engine.network import Network
from engine.training import ConfigError, TrainConfig
from server.frames import SECONDS_DIGITS, significant
from server.store import CostSeries, EvalRow, RunRow, Store, StoreError
from server.trainer.protocol import NotFound
from server.trainer.recorder import run_name

log = logging.getLogger(__name__)

DEFAULT_POINTS = 2000  # points of a cost curve unless a client asks for another number
MAX_POINTS = 100_000
CSV_SECONDS_DIGITS = 6  # in CSV, where a small network's mini-batch takes well under one

RUN_FIELDS = (
    "id",
    "name",
    "summary",
    "dataset",
    "status",
    "created_at",
    "updated_at",
    "examples_seen",
    "seconds",
    "epochs_done",
    "test_accuracy",
    "test_cost",
)
CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(TrainConfig))
RUN_CSV_FIELDS = ("kind", "batch", "epoch", "examples_seen", "seconds", "cost", "accuracy")


def open_library(state_dir: Path) -> Store | None:
    """The library in ``state_dir``, or None (said in the log) when it cannot be used."""
    try:
        return Store(state_dir)
    except StoreError as error:
        log.error(
            "%s; the live run is served without the run library (/runs), and the room's "
            "drawings will not outlast this server",
            error,
        )
        return None


def find_run(store: Store, run_id: str) -> RunRow:
    row = store.run(run_id)
    if row is None:
        raise NotFound(f"no run {run_id} in the run library")
    return row


# The JSON answers


def run_summary(row: RunRow, live_ids: Collection[str] | None = None) -> dict[str, Any]:
    """One run as GET /api/runs lists it; ``live``: it is a run the server trains now (the run,
    or a lane of the race); ``summary``: its config in a few words (a new run's name, which a
    rename replaces); ``race``: null, or the race it was a lane of. ``live_ids`` None: the live
    runs are not known here (the command line)."""
    live = live_ids is not None and row.id in live_ids
    stopped = live_ids is not None and not live
    return {
        "id": row.id,
        "name": row.name,
        "config": row.config,
        "summary": config_summary(row.config),
        "dataset": row.dataset,
        "status": "paused" if row.status == "running" and stopped else row.status,
        "created_at": iso_time(row.created_at),
        "updated_at": iso_time(row.updated_at),
        "examples_seen": row.examples_seen,
        "seconds": round(row.seconds, SECONDS_DIGITS),
        "epochs_done": row.epochs_done,
        "test_accuracy": row.test_accuracy,
        "test_cost": row.test_cost,
        "live": live,
        "race": None if row.race is None else dataclasses.asdict(row.race),
    }


def config_summary(config: dict[str, Any]) -> str:
    return summary_of(json.dumps(config, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def summary_of(config_json: str) -> str:
    """Many runs share a config: checking and wording each one once halves a long listing."""
    config = json.loads(config_json)
    try:
        return run_name(TrainConfig.from_dict(config))
    except (ConfigError, TypeError, ValueError):  # written by a version with other limits
        return ", ".join(f"{key} {csv_value(value)}" for key, value in config.items())


def run_detail(
    store: Store,
    row: RunRow,
    live_ids: Collection[str] | None = None,
    points: int | None = DEFAULT_POINTS,
) -> dict[str, Any]:
    """GET /api/runs/{id}: the summary, every evaluation, the cost curve in at most ``points``
    points (None: one per mini-batch), and the epochs whose weights are stored (``epochs``:
    replayable, resumable)."""
    evaluations = store.evaluations(row.id)
    series = store.costs(row.id)
    epochs = store.weight_epochs(row.id)
    return run_summary(row, live_ids) | {
        "evals": [evaluation_dict(evaluation) for evaluation in evaluations],
        "costs": downsampled(series, points),
        "epochs": epochs,
    }


def evaluation_dict(row: EvalRow) -> dict[str, Any]:
    return {
        "epoch": row.epoch,
        "examples_seen": row.examples_seen,
        "seconds": round(row.seconds, SECONDS_DIGITS),
        "accuracy": row.accuracy,
        "cost": row.cost,
    }


def downsampled(series: CostSeries, points: int | None) -> dict[str, Any]:
    """The cost curve in at most ``points`` points (None: one per mini-batch). Point ``i``
    stands for the ``stride`` mini-batches from index ``batch[i]`` (the last point may stand
    for fewer): their mean cost, and the mean of their ``examples_seen`` and ``seconds``, so
    that it sits in the middle of the stretch it averages. A cost is null where no mini-batch
    of the stretch had a finite one."""
    count = len(series.batch)
    stride = 1 if points is None else max(1, math.ceil(count / max(1, points)))
    starts = np.arange(0, count, stride)
    if count == 0:
        return {"stride": stride, "batch": [], "examples_seen": [], "seconds": [], "cost": []}
    sizes = np.diff(np.append(starts, count))
    finite = np.isfinite(series.cost)
    cost_sums = np.add.reduceat(np.where(finite, series.cost, 0.0), starts)
    cost_counts = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        costs = np.where(cost_counts > 0, cost_sums / cost_counts, np.nan)
    examples = np.add.reduceat(series.examples_seen.astype(np.float64), starts) / sizes
    seconds = np.add.reduceat(series.seconds, starts) / sizes
    return {
        "stride": stride,
        "batch": series.batch[starts].tolist(),
        "examples_seen": np.rint(examples).astype(np.int64).tolist(),
        "seconds": np.round(seconds, SECONDS_DIGITS).tolist(),
        "cost": [significant(float(cost)) for cost in costs],
    }


def epoch_network(store: Store, run_id: str, epoch: int) -> Network:
    """The network of run ``run_id`` at the end of ``epoch`` (0: as it started)."""
    find_run(store, run_id)
    blob = store.weights(run_id, epoch)
    if blob is None:
        stored = store.weight_epochs(run_id)
        held = ", ".join(map(str, stored)) or "none"
        raise NotFound(f"run {run_id} has no weights stored for epoch {epoch} (stored: {held})")
    try:
        return load_checkpoint(blob).network
    except CheckpointError as error:
        raise StoreError(f"the epoch {epoch} weights of run {run_id}: {error}") from error


# CSV


def runs_csv(rows: Iterable[RunRow], live_ids: Collection[str] | None = None) -> str:
    """One line per run: its summary, then its config's fields (as the `train` flags)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*RUN_FIELDS, *CONFIG_FIELDS])
    for row in rows:
        summary = run_summary(row, live_ids)
        config = [csv_value(row.config.get(name)) for name in CONFIG_FIELDS]
        writer.writerow([*(csv_value(summary[name]) for name in RUN_FIELDS), *config])
    return buffer.getvalue()


def run_csv(store: Store, run_id: str) -> str:
    """One line per mini-batch (``kind`` ``batch``: its training cost), then one per evaluation
    (``kind`` ``evaluation``: the test cost and accuracy), in one table of RUN_CSV_FIELDS."""
    find_run(store, run_id)
    series = store.costs(run_id)
    evaluations = store.evaluations(run_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RUN_CSV_FIELDS)
    writer.writerows(batch_lines(series))
    writer.writerows(evaluation_lines(evaluations))
    return buffer.getvalue()


def batch_lines(series: CostSeries) -> Iterable[Sequence[Any]]:
    columns = (series.batch.tolist(), series.examples_seen.tolist(), series.seconds.tolist())
    for batch, examples, seconds, cost in zip(*columns, series.cost.tolist()):
        yield (
            "batch",
            batch,
            "",
            examples,
            round(seconds, CSV_SECONDS_DIGITS),
            csv_value(cost),
            "",
        )


def evaluation_lines(evaluations: Iterable[EvalRow]) -> Iterable[Sequence[Any]]:
    for row in evaluations:
        cost = csv_value(row.cost)
        seconds = round(row.seconds, CSV_SECONDS_DIGITS)
        yield ("evaluation", "", row.epoch, row.examples_seen, seconds, cost, row.accuracy)


def csv_value(value: Any) -> Any:
    """Lists as the `train` flags write them (16,16); missing and not-finite values empty."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def iso_time(seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC, to the second: 2026-11-28T09:41:07Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
