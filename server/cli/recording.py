"""`backprop-live train --record`: the command line's run, written into the run library as it
trains, by the same :class:`Recorder` that writes a server's live run, so both kinds of run
read alike on the /runs page: every mini-batch's cost, each epoch's evaluation and weights,
and where it stopped (finished, diverged, or paused by Ctrl-C, resumable from the server)."""

from __future__ import annotations

from pathlib import Path

from engine.training import Trainer
from server.trainer.protocol import BatchRecord, Status
from server.trainer.recorder import Recorder
from server.trainer.run import LiveRun

# Mini-batches handed to the library's writer at once: one call per group keeps the writes
# as cheap for the trainer as the server's 20 ms reports are.
WRITE_EVERY = 100


class Recording:
    """One `train` run in the library of ``state_dir``. Raises StoreError if it cannot be
    opened: a run the user asked to keep is not trained unkept."""

    def __init__(self, state_dir: Path, trainer: Trainer, name: str | None) -> None:
        self.recorder = Recorder(state_dir, trainer.dataset, required=True)
        self.run = LiveRun(trainer, status=Status.RUNNING, speed=None)
        self.recorder.new_run(self.run, name)
        self.pending: list[BatchRecord] = []

    @property
    def path(self) -> Path:
        assert self.recorder.store is not None
        return self.recorder.store.path

    def step(self) -> BatchRecord:
        """Train one mini-batch and record it; Diverged goes on to the caller."""
        record = self.run.train_one()
        self.pending.append(record)
        if record.evaluation is not None:
            self.write()
            self.recorder.epoch_ended(self.run)
        elif len(self.pending) >= WRITE_EVERY:
            self.write()
        return record

    def write(self) -> None:
        if self.pending:
            self.recorder.record(self.run, self.pending)
            self.pending = []

    def close(self) -> None:
        """Store where the run stopped (an interrupted run as paused) and wait for the disk."""
        self.write()
        if self.run.status is Status.RUNNING:
            self.run.set_status(Status.PAUSED)
        self.recorder.save_state(self.run, wait=True)
        self.recorder.close()
