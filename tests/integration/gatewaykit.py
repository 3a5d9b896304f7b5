"""Helpers shared by the public-contract tests (test_contracts_*.py): a gateway in-process on port 0 with
keys required, tenants (an owner with a key and credits), and playing the stages on a job's record."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from services.common import bus
from services.common.objstore import ObjectStore
from services.gateway.server import RunningGateway, running
from services.gateway.settings import GatewaySettings
from tests.integration.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, nats_role_url
from videobg import nats_subjects, object_keys

VIDEO = "http://127.0.0.1:9/clip.mp4"  # never fetched: no stage runs in these tests
JSON_CT = {"content-type": "application/json"}
WEBHOOK_SECRET = "test-webhook-secret-of-this-deployment"


def server_settings(nats_url: str, s3_endpoint: str, store: ObjectStore, **kw: Any) -> GatewaySettings:
    """A gateway on the session's NATS and S3, REST and gRPC on free ports; `kw` sets the rest."""
    base: dict[str, Any] = dict(
        nats_url=nats_role_url(nats_url, "gateway"),
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=store.bucket,
        http_port=0,
        grpc_port=0,
        webhook_secret=WEBHOOK_SECRET,  # required with keys (settings.check_deployable)
    )
    return GatewaySettings(**{**base, **kw})


def settings_for(nats_url: str, s3_endpoint: str, store: ObjectStore, **kw: Any) -> GatewaySettings:
    """The contract tests' gateway: keys required, generous rate limits, no clock-driven settling."""
    base: dict[str, Any] = dict(
        result_url_ttl_s=120,
        auth_required=True,
        key_cache_s=0.0,  # a revoked key fails at once
        rate_limit_per_s=1000.0,
        rate_limit_burst=1000,
        auth_failures_burst=1000,  # the contract tests try many bad keys on purpose
        settle_sweep_s=0.0,  # tests settle through events and GET /v1/usage, not by the clock
        webhooks_enabled=False,  # no callbacks leave these tests
        submit_probe_s=0.0,  # VIDEO is never fetched; test_submit_probe.py turns the probe on
    )
    return server_settings(nats_url, s3_endpoint, store, **{**base, **kw})


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    async with running(settings) as gw, httpx.AsyncClient(base_url=gw.url, trust_env=False) as http:
        yield gw, http


async def tenant(gw: RunningGateway, credits: float = 1000.0) -> tuple[str, dict[str, str]]:
    """A fresh owner with one key and `credits`: (owner, headers carrying the key)."""
    owner = f"t-{uuid.uuid4().hex[:10]}"
    _, token = await gw.gateway.keys.create(owner)
    if credits:
        await gw.gateway.ledger.add(owner, credits)
    return owner, {"X-API-Key": token}


def own_asset(gw: RunningGateway, owner: str, asset_id: str) -> str:
    """An upload of `owner` (a few bytes, never ingested here): jobs of that owner may name it."""
    gw.gateway.objects.put_stream(
        object_keys.upload(asset_id), io.BytesIO(b"not a video"), metadata={"owner": quote(owner, safe="")}
    )
    return f"asset://{asset_id}"


async def ingest_seq(gw: RunningGateway) -> int:
    """Sequence of the last work message on vbg.work.ingest (0 if none)."""
    try:
        msg = await gw.gateway.js.get_last_msg(nats_subjects.WORK_STREAM, nats_subjects.WORK_INGEST)
    except Exception:
        return 0
    assert json.loads(msg.data)["job_id"]
    return msg.seq


async def finish(gw: RunningGateway, job_id: str, status: str, **fields: Any) -> None:
    """Play the stages: move the record to `status` (via processing) and publish the job's last event,
    as the encoder (completed) or a failing stage does."""
    store = gw.gateway.jobs
    await store.transition(job_id, ("queued",), "processing", stage="ingest")
    if status == "completed":
        fields.setdefault("result_key", object_keys.result(job_id, ".mp4"))
        fields.setdefault("progress", 100.0)
    assert await store.transition(job_id, ("processing",), status, **fields)
    event = {"status": status, "stage": "done", "error_code": fields.get("error_code", "")}
    await bus.publish_event(gw.gateway.js, job_id, event, msg_id=f"{job_id}:{status}")
