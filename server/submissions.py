"""How often one client may send a drawing to the board: a token bucket per client address.

A person draws a few digits a minute; a script could send thousands, filling the gallery and
the projector with noise. Each client may send ``BURST`` drawings at once, then one more every
``60 / PER_MINUTE`` seconds; beyond that, 429 with the seconds to wait in ``Retry-After``.

This is the gallery's own limiter, written while the server had none: one call,
:func:`allow_submission`, made once a drawing has been checked (a mistake answered 422 costs
no allowance), so a server-wide limiter can take its place in one line.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fastapi import HTTPException, Request

BURST = 6
PER_MINUTE = 12
MAX_CLIENTS = 10_000  # buckets kept; the full ones go first when there are more


class TokenBucket:
    """Per client: ``capacity`` tokens, refilled at ``rate`` per second; a request takes one."""

    def __init__(
        self,
        capacity: float = BURST,
        rate: float = PER_MINUTE / 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client: (tokens, when counted)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """Take a token for ``client``: 0 if it had one, else the seconds until it will."""
        with self._lock:
            now = self.clock()
            tokens = self._tokens(client, now)
            if tokens < 1:
                return (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1, now)
            if len(self._buckets) > MAX_CLIENTS:
                self._forget_full(now)
            return 0.0

    def _tokens(self, client: str, now: float) -> float:
        tokens, counted = self._buckets.get(client, (self.capacity, now))
        return min(self.capacity, tokens + (now - counted) * self.rate)

    def _forget_full(self, now: float) -> None:
        """A client whose bucket has refilled is the same as one never seen."""
        for client in [c for c in self._buckets if self._tokens(c, now) >= self.capacity]:
            del self._buckets[client]


def allow_submission(request: Request) -> None:
    """429 with Retry-After when this client has sent drawings faster than people draw."""
    bucket: TokenBucket = request.app.state.submissions
    client = request.client.host if request.client else "unknown"
    wait = bucket.take(client)
    if wait > 0:
        seconds = math.ceil(wait)
        raise HTTPException(
            429,
            f"too many drawings from this device: wait {seconds} s before sending another",
            headers={"Retry-After": str(seconds)},
        )
