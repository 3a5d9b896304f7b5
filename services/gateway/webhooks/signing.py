"""Webhook secrets and signatures: one secret per owner derived from the deployment's, HMAC-SHA256 over
f"{timestamp}.{body}", the receiver's `verify` (also spelled out in docs/API.md)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid

from services.gateway.settings import GatewaySettings

EVENT_HEADER = "X-Videobg-Event"
DELIVERY_HEADER = "X-Videobg-Delivery"
TIMESTAMP_HEADER = "X-Videobg-Timestamp"
SIGNATURE_HEADER = "X-Videobg-Signature"
TOLERANCE_S = 300  # receivers reject a timestamp further than this from their clock
_DELIVERY_NS = uuid.UUID("0c6f8d0e-2b7a-4f57-9f0e-7d1c5b3a9e21")  # fixed: same job+event -> same id
_PROCESS_SECRET = secrets.token_hex(32)  # only when no webhook_secret is configured (see master_secret)


def master_secret(settings: GatewaySettings) -> str:
    """The configured secret, one per deployment. Without one (only allowed with keys off: a gateway that
    requires keys refuses to start, settings.check_deployable) a random one per process."""
    return settings.webhook_secret or _PROCESS_SECRET


def owner_secret(master: str, owner: str) -> str:
    """The signing secret of one owner: an owner cannot compute another's, the operator keeps one."""
    digest = hmac.new(master.encode(), f"videobg-webhook-v1\x00{owner}".encode(), hashlib.sha256)
    return "whsec_" + digest.hexdigest()


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """hex HMAC-SHA256 of f"{timestamp}.{body}" under `secret` (its UTF-8 bytes)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """The receiver's check: a fresh timestamp and one `v1=` signature that matches (constant time)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    given = [p.strip()[3:] for p in signature.split(",") if p.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, g) for g in given)


def delivery_id(job_id: str, event: str) -> str:
    return str(uuid.uuid5(_DELIVERY_NS, f"{job_id}:{event}"))
