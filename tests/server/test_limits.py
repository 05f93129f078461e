"""Fair shares: rate limits per client and for everyone, the websocket door, on their own with
a clock the test turns, and on a real server whose clients come from different loopback
addresses (every 127.x.y.z is this machine, so each test client can be its own client)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from live_server import TOKEN, LiveServer, connect, start_server

from server import limits
from server.limits import Door, Limit, Limiter, LimitError, parse_limit

addresses = (f"127.0.{n // 250}.{n % 250 + 2}" for n in itertools.count())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = Limiter("classify", Limit(rate=0.5, burst=3), clock)
    assert [limiter.take("a") for _ in range(3)] == [None] * 3
    refusal = limiter.take("a")
    assert refusal is not None and refusal.retry_after == 2
    assert refusal.message.startswith("classify: at most 30/min (bursts of 3) per client")
    clock.now += 1.0
    assert limiter.take("a") is not None  # half a request earned: refusals cost nothing
    clock.now += 1.0
    assert limiter.take("a") is None
    assert limiter.take("b") is None, "another client has its own bucket"


def test_everyone_together_is_held_to_the_total() -> None:
    clock = Clock()
    limiter = Limiter("explain", Limit(rate=1, burst=2, total=4), clock)
    answers = [limiter.take(client) for client in "abcdef"]
    assert answers[:4] == [None] * 4
    assert all(refusal is not None for refusal in answers[4:])
    assert "for everyone together is 4/s" in answers[4].message
    clock.now += 0.25
    assert limiter.take("e") is None, "a refusal for the total used none of e's own"


def test_a_total_below_one_a_second_still_lets_one_through() -> None:
    clock = Clock()
    limiter = Limiter("download", Limit(rate=1, burst=3, total=0.5), clock)
    assert [limiter.take("a") is None, limiter.take("b") is None] == [True, False]
    clock.now += 2
    assert limiter.take("b") is None


def test_the_buckets_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_CLIENTS", 3)
    limiter = Limiter("classify", Limit(rate=1, burst=1), Clock())
    for client in "abcd":
        limiter.take(client)
    assert list(limiter.clients) == ["b", "c", "d"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2/s", Limit(2, 10, 200)),
        ("30/min,burst=4", Limit(0.5, 4, 200)),
        ("total=600/s", Limit(1, 10, 600)),
        (" burst=20 , 3/s ", Limit(3, 20, 200)),
        ("off", None),
    ],
)
def test_limits_are_read_as_written(text: str, expected: Limit | None) -> None:
    assert parse_limit(text, Limit(1, 10, 200)) == expected


@pytest.mark.parametrize("text", ["fast", "0/s", "2/h", "burst=0", "burst=2.5", "speed=3/s"])
def test_a_limit_written_wrong_says_how_to_write_it(text: str) -> None:
    with pytest.raises(LimitError, match="/s"):
        parse_limit(text, Limit(1, 10, 200))


def test_the_door_holds_the_room_and_each_address_to_its_pace() -> None:
    clock = Clock()
    door = Door(capacity=3, arrivals=Limit(rate=1, burst=2), clock=clock)
    assert [door.enter(client) for client in ("a", "a", "b")] == [None] * 3
    assert "the room is full (3 viewers)" in (door.enter("c") or "")
    door.leave()
    assert "per client" in (door.enter("a") or ""), "a's third arrival in the same second"
    assert door.enter("c") is None
    assert door.inside == 3
    reasons = [door.enter("d"), door.enter("a")]  # the room is full; too fast
    assert all(reason and len(reason.encode()) <= 123 for reason in reasons), "fit a close frame"


# On a real server

LIMITED = ("--classify-limit", "1/min,burst=3", "--explain-limit", "1/min,burst=2")
LIMITED += ("--trace-limit", "1/min,burst=2", "--download-limit", "1/min,burst=2,total=100/s")
LIMITED += ("--connect-limit", "off")
PIXELS = {"pixels": [0.0] * 392 + [1.0] * 392}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("limited")
    live = start_server(tmp / "state", tmp, flags=LIMITED)
    yield live
    live.stop()


def client_at(server: LiveServer, address: str | None = None, **kwargs: Any) -> httpx.Client:
    """A client whose requests come from ``address`` (a fresh one by default)."""
    transport = httpx.HTTPTransport(local_address=address or next(addresses))
    return httpx.Client(base_url=server.url, transport=transport, timeout=60, **kwargs)


def statuses(client: httpx.Client, count: int, method: str, path: str, **kwargs: Any) -> list:
    return [client.request(method, path, **kwargs).status_code for _ in range(count)]


def test_a_viewer_over_its_limit_is_told_to_slow_down(limited: LiveServer) -> None:
    with client_at(limited) as viewer:
        assert statuses(viewer, 3, "POST", "/api/classify", json=PIXELS) == [200] * 3
        refused = viewer.post("/api/classify", json=PIXELS)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith("classify: at most 1/min (bursts of 3) per client")
    with client_at(limited) as neighbour:
        assert neighbour.post("/api/classify", json=PIXELS).status_code == 200


def test_the_presenter_is_never_limited(limited: LiveServer) -> None:
    with client_at(limited, headers={"Authorization": f"Bearer {TOKEN}"}) as presenter:
        assert statuses(presenter, 8, "POST", "/api/classify", json=PIXELS) == [200] * 8
        assert statuses(presenter, 4, "GET", "/api/model") == [200] * 4
    with client_at(limited, headers={"Authorization": "Bearer guessed"}) as guesser:
        assert statuses(guesser, 4, "POST", "/api/classify", json=PIXELS) == [200] * 3 + [429]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/explain", {"index": 3}),
        ("GET", "/api/model", None),
        ("GET", "/api/checkpoint", None),
    ],
)
def test_every_costly_viewer_route_is_limited(
    limited: LiveServer, method: str, path: str, body: Any
) -> None:
    with client_at(limited) as viewer:
        answers = [viewer.request(method, path, json=body) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert "Retry-After" in answers[-1].headers


def test_fetching_a_trace_by_its_key_is_limited(limited: LiveServer) -> None:
    key = limited.control("POST", "/api/explain", json={"index": 5}).json()["key"]
    with client_at(limited) as viewer:
        assert statuses(viewer, 3, "GET", f"/api/explain/{key}") == [200, 200, 429]


def test_cheap_reads_are_not_limited(limited: LiveServer) -> None:
    with client_at(limited) as viewer:
        for path in ("/api/run", "/api/health", "/draw"):
            assert statuses(viewer, 5, "GET", path) == [200] * 5


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(
    limited: LiveServer, server_factory: Any
) -> None:
    def forwarded(server: LiveServer, proxy: str) -> list[int]:
        with client_at(server, proxy) as through_proxy:
            return [
                through_proxy.post(
                    "/api/classify", json=PIXELS, headers={"X-Forwarded-For": f"10.0.0.{n}"}
                ).status_code
                for n in range(5)
            ]

    assert forwarded(limited, next(addresses)) == [200] * 3 + [429] * 2, "one proxy, one client"
    proxy = next(addresses)
    trusting = server_factory(flags=(*LIMITED, "--forwarded-allow-ips", proxy))
    assert forwarded(trusting, proxy) == [200] * 5, "five clients behind a trusted proxy"
    assert forwarded(trusting, next(addresses)) == [200] * 3 + [429] * 2, "an untrusted one"


# The websocket door


async def close_of(server: LiveServer, path: str = "/ws") -> tuple[int | None, str]:
    """The close code and reason of a websocket the server refuses (None: it let it in)."""
    url = f"ws://127.0.0.1:{server.port}{path}"
    async with websockets.connect(url) as connection:
        try:
            await asyncio.wait_for(connection.recv(), 30)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason
    return None, ""


def test_a_full_room_turns_newcomers_away_with_1013_but_lets_the_presenter_in(
    server_factory: Any,
) -> None:
    server = server_factory(flags=("--max-viewers", "3", "--connect-limit", "off"))

    async def scenario() -> tuple[Any, ...]:
        viewers = [await connect(server) for _ in range(3)]
        code, reason = await close_of(server)
        presenter_path = f"/ws?token={TOKEN}"
        async with websockets.connect(f"ws://127.0.0.1:{server.port}{presenter_path}") as ws:
            hello = await asyncio.wait_for(ws.recv(), 30)
        for viewer in viewers:
            await viewer.connection.close()
        return code, reason, hello

    code, reason, hello = asyncio.run(scenario())
    assert code == 1013 and "the room is full (3 viewers)" in reason
    assert '"type": "hello"' in hello or '"type":"hello"' in hello


def test_one_address_opening_sockets_too_fast_is_turned_away(server_factory: Any) -> None:
    server = server_factory(flags=("--connect-limit", "1/min,burst=2"))

    async def scenario() -> list[tuple[int | None, str]]:
        first = [await connect(server) for _ in range(2)]
        refused = [await close_of(server) for _ in range(2)]
        for stream in first:
            await stream.connection.close()
        return refused

    for code, reason in asyncio.run(scenario()):
        assert code == 1013 and reason.startswith("websocket: at most 1/min")


def test_the_viewer_count_stays_right_under_churn(server_factory: Any) -> None:
    """Viewers arrive, leave politely, vanish without a word or are turned away at a full
    door, in random order; then every page's count says how many are really there."""
    server = server_factory(flags=("--max-viewers", "12", "--connect-limit", "off"))
    choice = random.Random(7)

    async def scenario() -> tuple[list[int], int]:
        watcher = await connect(server)
        present: list[Any] = []
        for _ in range(80):
            move = choice.random()
            if move < 0.5:
                with contextlib.suppress(websockets.ConnectionClosed):  # turned away
                    present.append(await connect(server))
            elif present:
                leaving = present.pop(choice.randrange(len(present)))
                if move < 0.75:
                    await leaving.connection.close()
                else:
                    leaving.connection.transport.abort()
        expected = 1 + len(present)
        counts = await asyncio.wait_for(settled_counts([watcher, *present], expected), 30)
        for stream in [watcher, *present]:
            await stream.connection.close()
        return counts, expected

    counts, expected = asyncio.run(scenario())
    assert counts == [expected] * len(counts)


async def settled_counts(streams: list[Any], expected: int) -> list[int]:
    """Each stream's latest viewer count, once every one has come to ``expected`` (the test
    fails by its timeout if some never do)."""

    def latest(stream: Any) -> int:
        counted = [f["viewers"] for f in stream.frames if f["type"] in ("hello", "status")]
        return counted[-1]

    while any(latest(stream) != expected for stream in streams):
        for stream in streams:
            if latest(stream) != expected:
                await stream.next(timeout=30)
    return [latest(stream) for stream in streams]
