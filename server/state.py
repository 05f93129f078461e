"""The run's state on disk, so a restarted server carries on where it was.

One checkpoint file in the state directory, written atomically by ``engine.checkpoint`` (at
every epoch end and on pause). A file that cannot be read is moved aside with a warning and the
server starts fresh: a damaged file must never stop a classroom's server from starting.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from engine.checkpoint import Checkpoint, load_checkpoint, save_trainer
from engine.training import Trainer

log = logging.getLogger(__name__)

STATE_FILE = "run.npz"


class StateStore:
    """Saves and restores the run in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE

    def save(self, trainer: Trainer, metadata: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        save_trainer(self.path, trainer, metadata)

    def load(self) -> Checkpoint | None:
        """The saved run, or None if there is none or it is unreadable (then set aside)."""
        if not self.path.exists():
            return None
        try:
            return load_checkpoint(self.path)
        except Exception as error:  # any damage at all: set it aside, never refuse to start
            aside = self.set_aside()
            log.warning(
                "the saved run %s could not be read (%s); moved it to %s and starting fresh",
                self.path,
                error,
                aside,
            )
            return None

    def set_aside(self) -> Path:
        aside = self.path.with_name(f"{STATE_FILE}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        counter = 1
        while aside.exists():
            aside = aside.with_name(f"{aside.name.split('~')[0]}~{counter}")
            counter += 1
        self.path.rename(aside)
        return aside
