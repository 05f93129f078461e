"""Fair shares for untrusted work: how often each client, and all clients together, may ask for
what costs the server CPU, and how many websockets may be open.

Every limit is a token bucket: a client may ask ``burst`` times at once, then ``rate`` times a
second; all clients together ``total`` times a second. A request over either is refused at
once with 429 and ``Retry-After`` (its cost is then a dictionary look-up), so that a room of
phones, or one student with a loop, cannot take the machine's time from training and from the
others. The presenter (a valid token) is never limited.

A client is its address as the server sees it. Behind a reverse proxy that is the proxy's, and
the whole room would be one client, unless ``serve --forwarded-allow-ips`` names the proxy: its
``X-Forwarded-For`` then counts (uvicorn's ProxyHeadersMiddleware rewrites the address before
any route sees it; see :func:`server.app.create_app`). Addresses are not grouped by network:
in a classroom every phone shares one.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

# Buckets kept per limit: the least recently seen client is forgotten beyond this (and starts
# again full), so addresses that come and go cannot grow memory without bound.
MAX_CLIENTS = 65_536
# A refusal is answered this late. A script that loops over requests (the usual flood: each
# waits for its answer) is then held to ten a second per connection, instead of the thousand
# that the server would otherwise refuse, each for as much CPU as the cheapest route (measured
# by benchmarks/flood.py: see the README's Limits). The wait holds no thread; a page that is
# refused says "slow down" a tenth of a second later.
REFUSAL_DELAY = 0.1
UNITS = {"s": 1.0, "min": 60.0}
RATE_PATTERN = re.compile(r"^(?P<count>\d+(\.\d+)?)/(?P<unit>s|min)$")


class LimitError(ValueError):
    """A limit written in a way :func:`parse_limit` does not read; says how to write it."""


@dataclass(frozen=True)
class Limit:
    """``rate`` requests a second per client, ``burst`` at once; ``total`` a second from all
    clients together (``None``: no total), with bursts of a second's worth (at least one)."""

    rate: float
    burst: int
    total: float | None = None

    def __str__(self) -> str:
        total = "" if self.total is None else f",total={rate_text(self.total)}"
        return f"{rate_text(self.rate)},burst={self.burst}{total}"


def rate_text(per_second: float) -> str:
    """``"2/s"``, or ``"12/min"`` for a rate below one a second that a minute counts whole."""
    per_minute = round(per_second * 60, 9)
    if per_second < 1 and per_minute.is_integer():
        return f"{per_minute:g}/min"
    return f"{per_second:g}/s"


def parse_rate(text: str) -> float:
    """Requests per second, from ``"2/s"`` or ``"30/min"``."""
    match = RATE_PATTERN.match(text.strip())
    if match is None or float(match["count"]) <= 0:
        raise LimitError(f"{text!r} is not a rate: write it as 2/s or 30/min (above 0)")
    return float(match["count"]) / UNITS[match["unit"]]


def parse_limit(text: str, default: Limit) -> Limit | None:
    """A limit from the command line: ``"off"`` (none), or parts of ``"RATE,burst=N,total=RATE"``
    in any order, each part changing only itself in ``default`` (``"total=600/s"``)."""
    if text.strip().lower() == "off":
        return None
    limit = default
    for part in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = part.partition("=")
        if not equals:
            limit = replace(limit, rate=parse_rate(part))
        elif name.strip() == "burst" and value.strip().isdigit() and int(value) >= 1:
            limit = replace(limit, burst=int(value))
        elif name.strip() == "total":
            limit = replace(limit, total=parse_rate(value))
        else:
            raise LimitError(
                f"{part!r}: write a limit as RATE,burst=N,total=RATE (for example "
                "1/s,burst=10,total=200/s; each part optional), or off"
            )
    return limit


class Bucket:
    """Tokens that refill at ``rate`` a second up to ``capacity``; a request takes one."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self) -> float:
        """Seconds until a token is there (0 if one is)."""
        return max(0.0, (1 - self.tokens) / self.rate)


@dataclass(frozen=True)
class Refusal:
    """Why a request must wait, and for how many whole seconds (``Retry-After``)."""

    message: str
    retry_after: int


class Limiter:
    """One kind of work's :class:`Limit`: a bucket per client and one for all of them."""

    def __init__(
        self, name: str, limit: Limit, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.limit = limit
        self.clock = clock
        self.clients: OrderedDict[str, Bucket] = OrderedDict()
        total = limit.total
        self.everyone = None if total is None else Bucket(total, max(1.0, total), clock())

    def take(self, client: str) -> Refusal | None:
        """Count one request from ``client``; a :class:`Refusal` if it is over a limit (and
        then it counts against nothing)."""
        now = self.clock()
        bucket = self._bucket(client, now)
        bucket.refill(now)
        if bucket.tokens < 1:
            return self._refusal(bucket.wait(), f"at most {self._per_client()} per client")
        if self.everyone is not None:
            self.everyone.refill(now)
            if self.everyone.tokens < 1:
                everyone = f"the server's limit for everyone together is {self._total()}"
                return self._refusal(self.everyone.wait(), everyone)
            self.everyone.tokens -= 1
        bucket.tokens -= 1
        return None

    def _bucket(self, client: str, now: float) -> Bucket:
        bucket = self.clients.get(client)
        if bucket is None:
            bucket = self.clients[client] = Bucket(self.limit.rate, self.limit.burst, now)
            if len(self.clients) > MAX_CLIENTS:
                self.clients.popitem(last=False)
        else:
            self.clients.move_to_end(client)
        return bucket

    def _refusal(self, wait: float, which: str) -> Refusal:
        seconds = max(1, math.ceil(wait))
        return Refusal(f"{self.name}: {which}; try again in {seconds} s", seconds)

    def _per_client(self) -> str:
        return f"{rate_text(self.limit.rate)} (bursts of {self.limit.burst})"

    def _total(self) -> str:
        assert self.limit.total is not None
        return rate_text(self.limit.total)


class Door:
    """Who may open a websocket: at most ``capacity`` open at once, and from one address at
    most ``arrivals`` new ones (per address only: the capacity is the total)."""

    def __init__(
        self, capacity: int, arrivals: Limit | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.inside = 0
        self.arrivals = None if arrivals is None else Limiter("websocket", arrivals, clock)

    def enter(self, client: str) -> str | None:
        """Take a place for a websocket from ``client``; or the reason it gets none (which the
        close frame carries, so at most 123 bytes)."""
        if self.inside >= self.capacity:
            return f"the room is full ({self.capacity} viewers); retrying"
        refusal = None if self.arrivals is None else self.arrivals.take(client)
        if refusal is not None:
            return f"{refusal.message}; retrying"
        self.inside += 1
        return None

    def leave(self) -> None:
        self.inside -= 1
