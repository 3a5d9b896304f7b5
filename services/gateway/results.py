"""Result URLs: presigned, expiring, and minted afresh for as long as the result object exists.

A completed job's result lives at `jobs/{id}/result{ext}` (videobg/object_keys.py). Clients never get a
permanent link: each status read signs a GET URL valid for `result_url_ttl_s` from now (signing is a
local computation, no S3 call), so a job stays queryable after a URL it handed out expired and simply
hands out a new one. Once retention has deleted the object (or marked the record `result_expired`), the
view says so instead of signing a URL that would only answer 404:

    not completed       {}
    result present      {"result_url": "http://...X-Amz-Expires=3600...", "result_url_expires_at": ISO,
                         "result_expired": false}
    result deleted      {"result_url": null, "result_url_expires_at": null, "result_expired": true}

Every dialect embeds `await result_view(gateway, job)` (renaming fields to its contract where needed);
webhooks carry the same URL as `result.url`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.common.record import Job, Status
from videobg.errors import NotFound, Transient

if TYPE_CHECKING:
    from services.gateway.jobs import Gateway

log = logging.getLogger(__name__)

EXPIRED: dict[str, Any] = {"result_url": None, "result_url_expires_at": None, "result_expired": True}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def result_exists(gateway: Gateway, job: Job) -> bool:
    """False once the result object is gone (retention). An S3 that cannot be asked right now counts as
    present: signing needs no S3, and a client that downloads too early only retries."""
    if job.result_expired:
        return False
    try:
        await asyncio.to_thread(gateway.objects.stat, gateway.result_key(job))
    except NotFound:
        return False
    except Transient as e:
        log.warning("job %s: cannot check the result object (%s); signing anyway", job.id, e)
    return True


def sign(gateway: Gateway, job: Job, *, now: datetime | None = None) -> tuple[str, str]:
    """(presigned GET URL, its expiry as ISO-8601 UTC) for the job's result, valid result_url_ttl_s."""
    ttl = float(gateway.settings.result_url_ttl_s)
    signed_at = (now or datetime.now(UTC)).replace(microsecond=0)
    url = gateway.objects.presigned_get(gateway.result_key(job), ttl)
    return url, iso(signed_at + timedelta(seconds=ttl))


async def result_view(gateway: Gateway, job: Job) -> dict[str, Any]:
    """The result fields of a status response (see the module docstring)."""
    if job.status != Status.COMPLETED:
        return {}
    if not await result_exists(gateway, job):
        return dict(EXPIRED)
    url, expires_at = sign(gateway, job)
    return {"result_url": url, "result_url_expires_at": expires_at, "result_expired": False}
