"""Per-key token buckets: `rate` requests per second sustained, `burst` at once.

In-process, one set of buckets per gateway replica: with N replicas behind a load balancer a key gets up
to N x the configured rate. That is the price of not making a NATS round trip per request; it bounds
abuse, not billing (credits are exact and shared). A deployment that needs one global limit can put it in
the ingress, or move these buckets into a KV bucket (a compare-and-set per request).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from videobg.errors import RateLimited

RATE_LIMITED_MESSAGE = "Too many requests"  # the Pixelcut contract's wording


class TokenBuckets:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ):
        if rate_per_s < 0 or burst < 0:
            raise ValueError("rate and burst must not be negative")
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens: 0.0 if granted, else the seconds until they will be there (nothing taken)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens = self._level(key, now)
            if tokens >= cost:
                self._store(key, tokens - cost, now)
                return 0.0
            self._store(key, tokens, now)
            return (cost - tokens) / self.rate

    def wait(self, key: str) -> float:
        """0.0 if a token is there now, else the seconds until one will be (nothing is taken)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens = self._level(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _level(self, key: str, now: float) -> float:
        """The key's tokens at `now` (a key not seen yet has a full bucket); call with the lock held."""
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def check(self, key: str) -> None:
        """Raise RateLimited (429, Retry-After) when the key's bucket is empty."""
        wait = self.take(key)
        if wait > 0:
            raise RateLimited(RATE_LIMITED_MESSAGE, retry_after_s=wait)

    def _store(self, key: str, tokens: float, at: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(at)
        self._buckets[key] = (tokens, at)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: a forgotten bucket starts full, so nothing changes."""
        full_after = self.burst / self.rate if self.rate > 0 else 0.0
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # all busy: drop the oldest half
            for key, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[: self.max_keys // 2]:
                del self._buckets[key]


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds (RFC 9110); never 0, which would invite an immediate retry."""
    return str(max(1, math.ceil(seconds)))
