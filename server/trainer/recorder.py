"""Persistence for the trainer: every run goes into the run library (:mod:`server.store`), so
a restarted server carries on where it was and old runs can be compared and resumed.

What is written when: a run's row when it is created; every mini-batch's cost as the worker
reports it; at every epoch end the evaluation and the weights (with the optimiser's state, so
any epoch can be resumed exactly); the latest resumable state at every epoch end, pause, step
and shutdown. The store writes on its own thread, so none of this waits for the disk; a pause
and a shutdown wait for the commit, so what a presenter paused is on disk when they see it.
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
from server.store import Store, StoreError
from server.trainer.protocol import BatchRecord, CostRecord, Status
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

    def __init__(self, state_dir: Path, dataset: Dataset) -> None:
        self.state_dir = state_dir
        self.dataset = dataset
        self.store: Store | None = None
        try:
            self.store = Store(state_dir)
        except StoreError as error:
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

    def new_run(self, run: LiveRun) -> None:
        if self.store is None:
            return
        config = run.trainer.config
        self.store.create_run(
            run.id,
            run_name(config),
            config.to_dict(),
            self.dataset.name,
            time.time(),
            status=run.status.value,
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
