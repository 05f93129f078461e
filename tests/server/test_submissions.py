"""The gallery's per-device limit on drawings, on a clock the test moves."""

from __future__ import annotations

import pytest

from server import submissions
from server.submissions import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_drawing_per_refill_interval() -> None:
    clock = Clock()
    bucket = TokenBucket(capacity=3, rate=0.5, clock=clock)  # one token every 2 s
    assert [bucket.take("phone") for _ in range(3)] == [0, 0, 0]
    assert bucket.take("phone") == pytest.approx(2.0)
    clock.now += 0.5
    assert bucket.take("phone") == pytest.approx(1.5), "a refused request takes nothing"
    clock.now += 1.5
    assert bucket.take("phone") == 0
    assert bucket.take("phone") == pytest.approx(2.0)
    clock.now += 60
    assert [bucket.take("phone") for _ in range(4)][:3] == [0, 0, 0], "refills to the burst only"


def test_each_device_has_its_own_allowance() -> None:
    bucket = TokenBucket(capacity=1, rate=0.1, clock=Clock())
    assert bucket.take("a") == 0
    assert bucket.take("a") > 0
    assert bucket.take("b") == 0


def test_devices_whose_allowance_has_refilled_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(submissions, "MAX_CLIENTS", 10)
    clock = Clock()
    bucket = TokenBucket(capacity=2, rate=1.0, clock=clock)
    for device in range(10):
        bucket.take(f"old {device}")
    clock.now += 5  # every old device is full again
    bucket.take("busy")
    bucket.take("busy")
    bucket.take("new")
    assert set(bucket._buckets) == {"busy", "new"}
    assert bucket.take("busy") > 0, "a device still waiting is remembered"
