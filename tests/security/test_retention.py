"""Tenants stay apart in what the gateway reads, drafts cannot pile up, and what is kept expires.

- /v1/usage reads the caller's records only (through the per-owner index): another tenant's record,
  made unreadable here, cannot break (or be read by) it. Before the fix every record was read.
- A key may hold `max_open_drafts` drafts; the next is refused (429). Before the fix: unbounded.
- Job records expire with the bucket's max age; uploads and job files by the retention sweep.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from services.common.objstore import ObjectStore
from tests.integration import gatewaykit
from tests.integration.conftest import S3_ACCESS_KEY, S3_SECRET_KEY
from videobg import nats_subjects

pytestmark = [pytest.mark.security, pytest.mark.integration]

VIDEO = gatewaykit.VIDEO


def body(**extra: object) -> dict[str, object]:
    return {"video_url": f"{VIDEO}?n={uuid.uuid4().hex}", "model": "light", **extra}


async def test_usage_reads_only_the_callers_records(nats_url: str, s3_endpoint: str, object_store) -> None:
    settings = gatewaykit.settings_for(nats_url, s3_endpoint, object_store)
    async with gatewaykit.gateway(settings) as (gw, http):
        _, mine = await gatewaykit.tenant(gw)
        _, theirs = await gatewaykit.tenant(gw)
        r = await http.post("/v1/jobs", json=body(), headers=mine)
        assert r.status_code < 300, r.text
        r = await http.post("/v1/jobs", json=body(), headers=theirs)
        their_job = r.json()["id"]
        kv = await gw.gateway.js.key_value(nats_subjects.JOBS_BUCKET)
        await kv.put(their_job, b"\xff not a record")  # reading it would fail the request
        try:
            usage = await http.get("/v1/usage", headers=mine)
            assert usage.status_code == 200, usage.text
            assert usage.json()["jobs"]["total"] == 1
        finally:
            await kv.delete(their_job)


async def test_draft_flood_is_capped_per_key(nats_url: str, s3_endpoint: str, object_store) -> None:
    settings = gatewaykit.settings_for(nats_url, s3_endpoint, object_store, max_open_drafts=3)
    async with gatewaykit.gateway(settings) as (gw, http):
        owner, key = await gatewaykit.tenant(gw)
        for _ in range(3):
            r = await http.post("/v1/jobs", json=body(auto_start=False), headers=key)
            assert r.status_code < 300 and r.json()["status"] == "draft", r.text
        r = await http.post("/v1/jobs", json=body(auto_start=False), headers=key)
        assert r.status_code == 429, r.text
        assert "limit is 3" in r.text
        # a job that starts at once is not a draft: still accepted
        assert (await http.post("/v1/jobs", json=body(), headers=key)).status_code < 300
        # the cap is per key: the owner's second key has its own
        _, token = await gw.gateway.keys.create(owner)
        r = await http.post("/v1/jobs", json=body(auto_start=False), headers={"X-API-Key": token})
        assert r.status_code < 300, r.text


async def test_job_records_and_files_expire(nats_url: str, s3_endpoint: str) -> None:
    store = ObjectStore(s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, f"vbg-retention-{uuid.uuid4().hex[:8]}")
    store.ensure_bucket()
    settings = gatewaykit.settings_for(
        nats_url, s3_endpoint, store, upload_retention_s=0.5, job_retention_s=7 * 24 * 3600.0
    )
    async with gatewaykit.gateway(settings) as (gw, _):
        info = await gw.gateway.js.stream_info(f"KV_{nats_subjects.JOBS_BUCKET}")
        assert info.config.max_age == pytest.approx(7 * 24 * 3600.0)
        store.put_bytes("uploads/old-upload", b"x")
        store.put_bytes("jobs/recent-job/result.mp4", b"y")  # younger than the job retention
        deadline = time.monotonic() + 30
        while store.exists("uploads/old-upload"):
            assert time.monotonic() < deadline, "the upload outlived its retention"
            await gw.gateway.sweep_retention()
            await asyncio.sleep(0.5)
        assert store.exists("jobs/recent-job/result.mp4")
