"""Settings in one place: where the server listens, what it reads, who may control the run."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from engine.training import Limits

APP_NAME = "backprop-live"
TOKEN_ENV = "BACKPROP_LIVE_TOKEN"
# The largest request body: a config, a picture, a drawing's pixels as JSON (413 beyond it).
# Only a checkpoint upload may be larger (server/routes/model.py).
MAX_BODY_BYTES = 2 * 1024 * 1024
# The "cost average" people are shown, by the server and by `train`'s progress bar, is the mean
# of this many latest mini-batches.
COST_WINDOW = 100
# A run's pace. Slower than one mini-batch every ten seconds looks the same as paused, and a
# speed near zero would ask the worker to sleep for longer than the clock can count.
SPEED = Limits("mini-batches per second (null: as fast as possible)", low=0.1, high=10_000)
# 3Blue1Brown's network at 20 mini-batches of 100 digits a second: the cost visibly falls
# within ten seconds and an epoch of the full set takes 30.
DEFAULT_SPEED: float | None = 20.0
# A class of thirty drawing every digit a dozen times over fits; a script filling it does not
# fill the disk.
DEFAULT_GALLERY_SIZE = 5_000


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def default_token() -> str:
    """The presenter token: ``BACKPROP_LIVE_TOKEN`` if set, else a new random one per start."""
    return os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Settings:
    """How one server runs. ``data_dir=None`` searches for MNIST as ``engine.data`` does."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path | None = None
    token: str = field(default_factory=default_token)
    state_dir: Path = field(default_factory=default_state_dir)
    # Measured by benchmarks/fanout.py: compressing every frame for every client costs more
    # server CPU than the bandwidth it saves on a LAN (see the benchmark's report).
    ws_per_message_deflate: bool = False
    gallery_size: int = DEFAULT_GALLERY_SIZE  # the most drawings the room's gallery keeps
