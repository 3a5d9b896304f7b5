"""Who is calling: the owner a request acts for, and the key it came with (services/gateway/auth.py
resolves it). Its own module so that the job logic (jobs.py) and the asset lookup (assets.py) can name
it without importing the REST layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """A caller with a key is metered: credits are reserved and charged, and it sees only its owner's
    jobs. The anonymous owner (no key, auth off) is neither."""

    owner: str
    key_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.key_id is None


ANONYMOUS = Caller(owner="anonymous")
