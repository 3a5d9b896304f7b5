"""`Idempotency-Key`: a retried submit returns the job the first one created, and never a second job.

The key (1..255 printable ASCII characters, chosen by the client) is scoped to the caller's owner: the job
id is a UUIDv5 of (owner, key) (`jobs.job_id_for`), so a retry lands on the same job record, and on the
same work message, whichever replica takes it, with no extra store. The record keeps a fingerprint of the
request: sha256 over the dialect and the request's parameters, canonical JSON (sorted keys). A retry
with the same fingerprint gets the job as it is now (same id; status may have moved on) with the header
`Idempotent-Replayed: true`; a retry with a different body gets 409 `conflict` ("Idempotency-Key ...
was already used with a different request"), and nothing is created or charged. A key is remembered as
long as its job record is kept. Without the header every submit creates a new job.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import Request

from videobg.errors import InvalidInput

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")


def key_from(request: Request) -> str:
    """The request's Idempotency-Key ("" when absent); InvalidInput when malformed."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return ""
    key = raw.strip()
    if not _KEY.match(key):
        raise InvalidInput(f"{HEADER} must be 1 to 255 printable ASCII characters")
    return key


def fingerprint(dialect: str, params: dict[str, Any]) -> str:
    """What makes two submits 'the same request': the dialect and the parameters, not their spelling in
    JSON (key order, whitespace) nor the headers."""
    canonical = json.dumps(
        {"dialect": dialect, "params": params}, sort_keys=True, separators=(",", ":"), default=repr
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay_headers(replayed: bool) -> dict[str, str]:
    return {REPLAYED_HEADER: "true"} if replayed else {}
