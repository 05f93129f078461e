"""Settings in one place: where the server listens, what it reads, who may control the run."""

from __future__ import annotations

import os
import resource
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from engine.training import Limits
from server.limits import Limit

APP_NAME = "backprop-live"
TOKEN_ENV = "BACKPROP_LIVE_TOKEN"
# The largest request body: a config, a picture, a drawing's pixels as JSON (413 beyond it).
# Only a checkpoint upload may be larger (server/routes/model.py).
MAX_BODY_BYTES = 2 * 1024 * 1024
# The "cost average" people are shown, by the server and by `train`'s progress bar, is the mean
# of this many latest mini-batches.
COST_WINDOW = 100
# A race lane's cost is the mean of the mini-batches that hold its latest this many examples:
# lanes with different batch sizes are compared over the same number of examples.
RACE_COST_EXAMPLES = 100
# A run's pace. Slower than one mini-batch every ten seconds looks the same as paused, and a
# speed near zero would ask the worker to sleep for longer than the clock can count.
SPEED = Limits("mini-batches per second (null: as fast as possible)", low=0.1, high=10_000)
# 3Blue1Brown's network at 20 mini-batches of 100 digits a second: the cost visibly falls
# within ten seconds and an epoch of the full set takes 30.
DEFAULT_SPEED: float | None = 20.0
# A class of thirty drawing every digit a dozen times over fits; a script filling it does not
# fill the disk.
DEFAULT_GALLERY_SIZE = 5_000


# What viewers may ask of the server, by kind of work (see server.limits and the README's
# "Limits"). Sized for a room of 300 phones drawing: a person draws a few digits a minute, and
# the draw pad asks at most once a second while drawing and every 3 s while the network learns
# (100 a second for the room). One classify costs the web process 2.5-4 ms of CPU (measured on
# the 2-core machine while it trains), so 200 a second from everyone take at most about three
# quarters of one core and leave the trainer process the other.
RATE_LIMITS: Mapping[str, tuple[str, Limit]] = {
    "classify": ("POST /api/classify", Limit(rate=1.0, burst=10, total=200.0)),
    # A trace computes one example's backward pass and a mini-batch of 100 beside it.
    "explain": ("POST /api/explain", Limit(rate=0.2, burst=5, total=20.0)),
    # A kept trace, by its key: when the presenter picks an example, the whole room asks.
    "trace": ("GET /api/explain/{key}", Limit(rate=1.0, burst=10, total=500.0)),
    # Every weight as JSON floats, or the whole run packed by the trainer process itself.
    "download": ("GET /api/model, GET /api/checkpoint", Limit(rate=0.1, burst=3, total=2.0)),
}
# New websockets per address: a page that reloads, a few tabs, a reconnect after a restart.
CONNECT_LIMIT = Limit(rate=2.0, burst=10)
MIN_VIEWERS = 1000
VIEWERS_PER_CORE = 1000  # what one core fans frames out to, at the snapshot byte budget
RESERVED_FILES = 100  # descriptors kept for the data, the run library, the trainer's pipes


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def default_max_viewers() -> int:
    """Websockets open at once: a thousand per core, as many as the open-file limit allows
    (``serve`` raises it to the hard limit first), and never fewer than :data:`MIN_VIEWERS`."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    files = hard if hard != resource.RLIM_INFINITY else 1 << 20
    return max(MIN_VIEWERS, min(VIEWERS_PER_CORE * (os.cpu_count() or 1), files - RESERVED_FILES))


def default_rate_limits() -> dict[str, Limit | None]:
    return {kind: limit for kind, (_, limit) in RATE_LIMITS.items()}


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
    # By kind of work (RATE_LIMITS); None: unlimited.
    rate_limits: Mapping[str, Limit | None] = field(default_factory=default_rate_limits)
    connect_limit: Limit | None = CONNECT_LIMIT
    max_viewers: int = field(default_factory=default_max_viewers)
    # The reverse proxies whose X-Forwarded-For names the client (uvicorn's syntax: addresses
    # and networks, comma-separated, or "*"); none by default, so a proxy is one client.
    forwarded_allow_ips: str | None = None
    # The trainer to follow through Redis (``serve --redis``); None: start one of our own.
    redis_url: str | None = None
