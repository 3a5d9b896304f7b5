"""Per-key token buckets (services/gateway/ratelimit.py), on a fake clock."""

from __future__ import annotations

import pytest

from services.gateway.ratelimit import TokenBuckets, retry_after_header
from videobg.errors import RateLimited

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_at_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)  # one token at 2/s
    clock.t += 0.25
    assert buckets.take("k") == pytest.approx(0.25), "a refused request must not take a token"
    clock.t += 0.25
    assert buckets.take("k") == 0.0
    clock.t += 100  # refills to the burst, no further
    assert [buckets.take("k") for _ in range(4)][-1] > 0


def test_keys_are_independent_and_check_raises() -> None:
    buckets = TokenBuckets(rate_per_s=0.1, burst=1, clock=Clock())
    buckets.check("a")
    buckets.check("b")
    with pytest.raises(RateLimited) as e:
        buckets.check("a")
    assert e.value.code == "rate_limit_exceeded" and e.value.retry_after_s == pytest.approx(10.0)
    assert e.value.message == "Too many requests"


def test_disabled_and_retry_after_header() -> None:
    off = TokenBuckets(rate_per_s=0, burst=0)
    assert all(off.take("k") == 0.0 for _ in range(1000))
    assert (
        retry_after_header(0.01) == "1" and retry_after_header(1.0) == "1" and retry_after_header(1.2) == "2"
    )


def test_pruning_keeps_memory_bounded_without_granting_more() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=1.0, burst=2, clock=clock, max_keys=10)
    for i in range(10):
        buckets.take(f"idle{i}")
    clock.t += 5  # every idle bucket has refilled: forgetting them changes nothing
    buckets.take("busy")
    buckets.take("busy")
    assert len(buckets._buckets) <= 10
    assert buckets.take("busy") > 0
