"""Persistence for the trainer: every run goes into the run library (:mod:`server.store`), so
a restarted server carries on where it was and old runs can be compared and resumed.

What is written when: a run's row when it is created; every mini-batch's cost as the worker
reports it; at every epoch end the evaluation and the weights (with the optimiser's state, so
any epoch can be resumed exactly); the latest resumable state at every epoch end, pause, step
and shutdown. Any run of the library can be made the live run again at the end of any epoch
whose weights it holds (resumed); what it stored after that point is then forgotten. The store
writes on its own thread, so none of this waits for the disk; a pause, a shutdown and a resume
wait for the commit, so what a presenter paused is on disk when they see it.
A library that cannot be opened (a newer version, a damaged file, a read-only directory) is
said once in the log and the server trains without one: a classroom's server always starts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.checkpoint import CheckpointError, load_checkpoint, trainer_bytes
from engine.data.mnist import Dataset
from engine.training import Evaluation, TrainConfig, Trainer
from server.config import DEFAULT_SPEED, SPEED
from server.store import EvalRow, RaceTag, Store, StoreError
from server.trainer.protocol import (
    BatchRecord,
    Conflict,
    CostRecord,
    Invalid,
    NotFound,
    Status,
)
from server.trainer.run import LiveRun

log = logging.getLogger(__name__)

LEGACY_STATE_FILE = "run.npz"  # the single-run state file of earlier versions


def run_name(config: TrainConfig) -> str:
    """A readable summary, e.g. "784-16-16-10 sigmoid · SGD η=3 · batch 100"."""
    sizes = "-".join(str(size) for size in config.layer_sizes)
    return (
        f"{sizes} {config.activation} · {config.optimizer.upper()} η={config.lr:g}"
        f" · batch {config.batch_size}"
    )


def no_record(first_batch: int) -> CostRecord:
    return CostRecord(first_batch, np.zeros(0), np.zeros((0, 0)), [])


class Recorder:
    """Writes the live run into the library and restores the latest one."""

    def __init__(self, state_dir: Path, dataset: Dataset, required: bool = False) -> None:
        """``required``: raise the :class:`StoreError` of a library that cannot be opened
        (`train --record` asked for it) instead of training on without one (a server)."""
        self.state_dir = state_dir
        self.dataset = dataset
        self.store: Store | None = None
        try:
            self.store = Store(state_dir)
        except StoreError as error:
            if required:
                raise
            log.error("%s; training goes on without keeping runs", error)

    # Restoring

    def restore(self) -> tuple[LiveRun, CostRecord] | None:
        """The most recent run, paused where it was last saved, with its costs so far."""
        if self.store is None:
            return None
        self._import_legacy_state()
        run_id = self.store.latest_run_id()
        saved = self.store.state(run_id) if run_id else None
        if run_id is None or saved is None:
            return None
        try:
            checkpoint = load_checkpoint(saved[1])
            trainer = checkpoint.trainer(self.dataset)
        except (CheckpointError, ValueError) as error:
            log.warning("could not resume run %s (%s); starting a fresh one", run_id, error)
            return None
        row = self.store.run(run_id)
        speed = saved_speed(checkpoint.metadata)
        run = LiveRun(trainer, run_id, Status.PAUSED, speed, row.seconds if row else 0.0)
        next_batch = trainer.progress.batch_index
        self.store.truncate(run_id, next_batch)
        log.info("resumed run %s at mini-batch %d", run_id, next_batch)
        return run, self.cost_record(run_id, trainer, next_batch)

    def cost_record(self, run_id: str, trainer: Trainer, next_batch: int) -> CostRecord:
        """The stored costs of ``run_id`` before ``next_batch``, if they are all there."""
        assert self.store is not None
        series = self.store.costs(run_id)
        keep = series.batch < next_batch
        batches = series.batch[keep]
        if len(batches) == 0 or batches[0] != 0 or len(batches) != next_batch:
            return no_record(next_batch)  # a gap: the chart starts afresh here
        per_epoch = trainer.batches_per_epoch
        evaluations = [
            (
                row.epoch * per_epoch - 1,
                Evaluation(row.epoch, row.accuracy, nan_for_none(row.cost), row.examples_seen),
            )
            for row in self.store.evaluations(run_id)
            if row.epoch * per_epoch <= next_batch
        ]
        return CostRecord(0, series.cost[keep], series.gradient_norms[keep], evaluations)

    # Resuming a run of the library

    def stored_run(self, run_id: str, epoch: int | None, speed: float | None) -> LiveRun:
        """Run ``run_id`` as it was at the end of ``epoch`` (None: the last one it finished),
        paused, at ``speed``. Nothing is written: :meth:`resumed` does that once it is live.

        Raises :class:`NotFound` for a run the library does not hold, :class:`Invalid` for an
        epoch it holds no weights of, :class:`Conflict` for a run trained on other data and
        :class:`StoreError` without a library.
        """
        store = self._open_store()
        store.flush()  # the live run's latest epoch may be the one asked for
        row = store.run(run_id)
        if row is None:
            raise NotFound(f"no run {run_id} in the run library")
        epoch = chosen_epoch(run_id, store.weight_epochs(run_id), epoch)
        blob = store.weights(run_id, epoch)
        evaluations = store.evaluations(run_id)
        if row.dataset != self.dataset.name:
            raise Conflict(
                f"run {run_id} was trained on the {row.dataset} data and this server trains on "
                f"the {self.dataset.name} data: its epochs can be replayed, not resumed here"
            )
        assert blob is not None  # chosen_epoch picked an epoch that is stored
        try:
            trainer = load_checkpoint(blob).trainer(self.dataset)
        except CheckpointError as error:
            raise StoreError(f"the epoch {epoch} weights of run {run_id}: {error}") from error
        seconds = seconds_at_epoch(evaluations, epoch)
        return LiveRun(trainer, run_id, Status.PAUSED, speed, seconds)

    def resumed(self, run: LiveRun) -> CostRecord:
        """``run`` (from :meth:`stored_run`) is live again: forget what it stored after the
        point it went back to, and return its costs up to there."""
        next_batch = run.trainer.progress.batch_index
        if self.store is None:  # the run live before a race, back without a library
            return no_record(next_batch)
        store = self.store
        store.truncate(run.id, next_batch)
        self.save_state(run, wait=True)  # the costs below are read back from the file
        log.info("resumed run %s at epoch %d", run.id, run.trainer.progress.epoch)
        return self.cost_record(run.id, run.trainer, next_batch)

    def _open_store(self) -> Store:
        if self.store is None:
            raise StoreError(
                "the run library could not be opened when the server started (the log says "
                "why): only the live run is kept"
            )
        return self.store

    def _import_legacy_state(self) -> None:
        """Earlier versions kept one run in ``run.npz``: bring it into the library once."""
        assert self.store is not None
        legacy = self.state_dir / LEGACY_STATE_FILE
        if not legacy.exists():
            return
        try:
            checkpoint = load_checkpoint(legacy)
            trainer = checkpoint.trainer(self.dataset)
        except Exception as error:  # any damage at all: set it aside, never refuse to start
            aside = set_aside(legacy)
            log.warning(
                "the saved run %s could not be read (%s); moved it to %s", legacy, error, aside
            )
            return
        run = LiveRun(trainer, None, Status.PAUSED, saved_speed(checkpoint.metadata))
        self.new_run(run)
        self.save_state(run)
        legacy.rename(legacy.with_name(f"{LEGACY_STATE_FILE}.imported"))
        log.info("imported the saved run of an earlier version as run %s", run.id)

    # Recording

    def new_run(self, run: LiveRun, name: str | None = None, race: RaceTag | None = None) -> None:
        """Add ``run`` to the library, named ``name`` or else after its config; ``race``: the
        race it is a lane of (its name then starts with the lane's label)."""
        if self.store is None:
            return
        config = run.trainer.config
        if name is None:
            name = run_name(config) if race is None else f"{race.label} · {run_name(config)}"
        self.store.create_run(
            run.id,
            name,
            config.to_dict(),
            self.dataset.name,
            time.time(),
            status=run.status.value,
            race=race,
        )
        if run.trainer.progress.batch_index == 0:
            self.store.save_weights(run.id, 0, self.checkpoint_bytes(run))
        self.save_state(run)

    def record(self, run: LiveRun, records: Sequence[BatchRecord]) -> None:
        """The mini-batches since the last call; at an epoch end, its score and weights."""
        if self.store is None or not records:
            return
        first = records[0]
        self.store.add_batches(
            run.id,
            first.index,
            [record.cost for record in records],
            [record.examples_seen for record in records],
            [record.seconds for record in records],
            [[stats.weight_norm for stats in record.gradients] for record in records],
        )
        for record in records:
            if record.evaluation is not None:
                self.store.add_evaluation(
                    run.id,
                    record.evaluation.epoch,
                    record.evaluation.examples_seen,
                    record.seconds,
                    record.evaluation.accuracy,
                    none_for_nan(record.evaluation.cost),
                )
        self.store.update_run(
            run.id,
            status=run.status.value,
            examples_seen=records[-1].examples_seen,
            seconds=run.seconds,
        )

    def epoch_ended(self, run: LiveRun) -> None:
        if self.store is None:
            return
        blob = self.checkpoint_bytes(run)
        self.store.save_weights(run.id, run.trainer.progress.epoch, blob)
        self.store.save_state(run.id, run.trainer.progress.batch_index, blob)

    def save_state(self, run: LiveRun, wait: bool = False) -> None:
        """The run as it is now, to resume from; ``wait``: until it is committed."""
        if self.store is None:
            return
        progress = run.trainer.progress
        self.store.save_state(run.id, progress.batch_index, self.checkpoint_bytes(run))
        self.store.update_run(
            run.id,
            status=run.status.value,
            examples_seen=progress.examples_seen,
            seconds=run.seconds,
        )
        if wait:
            self.store.flush()

    def checkpoint_bytes(self, run: LiveRun) -> bytes:
        return trainer_bytes(run.trainer, {"run": run.id, "speed": run.speed})

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def chosen_epoch(run_id: str, stored: Sequence[int], epoch: int | None) -> int:
    """``epoch`` if its weights are stored (None: the last one stored); else :class:`Invalid`."""
    if not stored:
        raise Invalid(f"epoch: run {run_id} has no stored weights to resume from")
    if epoch is None:
        return stored[-1]
    if epoch not in stored:
        raise Invalid(
            f"epoch: run {run_id} has weights for epochs {epoch_list(stored)}, not for {epoch}"
        )
    return epoch


def epoch_list(epochs: Sequence[int]) -> str:
    """Consecutive epochs as "0-3", others as "0, 2, 5"."""
    if list(epochs) == list(range(epochs[0], epochs[-1] + 1)) and len(epochs) > 2:
        return f"{epochs[0]}-{epochs[-1]}"
    return ", ".join(str(epoch) for epoch in epochs)


def seconds_at_epoch(evaluations: Sequence[EvalRow], epoch: int) -> float:
    """The training seconds when ``epoch`` ended: its evaluation was taken right then."""
    return next((row.seconds for row in evaluations if row.epoch == epoch), 0.0)


def saved_speed(metadata: dict[str, Any]) -> float | None:
    speed = metadata.get("speed", DEFAULT_SPEED)
    return speed if speed is None or SPEED.admits(speed, float) else DEFAULT_SPEED


def set_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    counter = 1
    while aside.exists():
        aside = aside.with_name(f"{aside.name.split('~')[0]}~{counter}")
        counter += 1
    path.rename(aside)
    return aside


def none_for_nan(value: float) -> float | None:
    return value if math.isfinite(value) else None


def nan_for_none(value: float | None) -> float:
    return math.nan if value is None else value
