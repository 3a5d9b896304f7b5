"""NATS users and permissions (services/common/natsauth.py), on the same nats-server config the local
stack and Kubernetes run. Before the fix NATS took any connection, and any stage (or anything that could
reach port 4222) could write the keys/credits bucket: mint an API key, or give an owner credits."""

from __future__ import annotations

import asyncio
import json

import nats
import nats.errors
import nats.js.errors
import pytest

from services.common import bus
from services.gateway.api_keys import KeyStore
from services.gateway.credits import Ledger
from tests.integration.conftest import nats_role_url
from videobg import nats_subjects
from videobg.errors import Transient

pytestmark = [pytest.mark.security, pytest.mark.integration]

# A refused publish is dropped by the server, which reports a permissions violation to the client (checked
# below, so a slow server cannot pass for a strict one); the caller then times out waiting for its ack,
# which the key store and the ledger report as Transient ("unavailable").
REFUSED = (nats.errors.TimeoutError, nats.js.errors.Error, nats.errors.Error, asyncio.TimeoutError, Transient)
WAIT_S = 2.0

# a work subject each stage may not publish (ingest hands on only to segment, segmenter only to encode)
NOT_ITS_WORK = {
    "ingest": nats_subjects.WORK_ENCODE,
    "segmenter": nats_subjects.WORK_INGEST,
    "compositor": nats_subjects.WORK_SEGMENT,
    "encoder": nats_subjects.WORK_INGEST,
}


async def connect(url: str, errors: list[str] | None = None) -> nats.NATS:
    async def on_error(e: Exception) -> None:
        if errors is not None:
            errors.append(str(e))

    return await nats.connect(url, error_cb=on_error, allow_reconnect=False, connect_timeout=5)


async def test_connection_without_a_user_is_refused(nats_url) -> None:
    bare = "nats://" + nats_url.split("@", 1)[-1]
    wrong = nats_role_url(nats_url, "ingest").replace("ingest:", "ingest:x")
    for url in (bare, wrong):
        with pytest.raises(Exception):  # noqa: B017  (an auth error or no servers, by nats.py version)
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5, max_reconnect_attempts=0)
            await nc.close()


@pytest.mark.parametrize("stage", ["ingest", "segmenter", "compositor", "encoder"])
async def test_stage_user_cannot_write_the_keys_bucket(nats_url, uid, stage) -> None:
    admin = await connect(nats_url)
    try:
        await bus.ensure_streams(admin.jetstream())  # the buckets exist, as once the gateway has run
        errors: list[str] = []
        nc = await connect(nats_role_url(nats_url, stage), errors)
        forged = f"key.forged{uid}"
        try:
            js = nc.jetstream(timeout=WAIT_S)
            with pytest.raises(REFUSED):
                await js.publish(
                    f"$KV.{nats_subjects.KEYS_BUCKET}.{forged}", b'{"owner":"mallory"}', timeout=WAIT_S
                )
            with pytest.raises(REFUSED):  # nor through the key store or the ledger (which read it first)
                await KeyStore(js).create("mallory")
            with pytest.raises(REFUSED):
                await Ledger(js).add("mallory", 1000.0)
            with pytest.raises(REFUSED):  # nor queue work it does not hand on (skip or loop a stage)
                await js.publish(NOT_ITS_WORK[stage], json.dumps({"job_id": "x"}).encode(), timeout=WAIT_S)
            # what it needs still works: a job record
            await js.publish(f"$KV.{nats_subjects.JOBS_BUCKET}.perm-{uid}", b"{}", timeout=30)
        finally:
            await nc.close()
        violations = " ".join(errors).lower()
        assert "permissions violation" in violations, errors
        for subject in (
            f"$KV.{nats_subjects.KEYS_BUCKET}.{forged}",
            f"$JS.API.STREAM.INFO.KV_{nats_subjects.KEYS_BUCKET}",
        ):
            assert subject.lower() in violations, (subject, errors)
        kv = await admin.jetstream().key_value(nats_subjects.KEYS_BUCKET)
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get(forged)
        assert (await Ledger(admin.jetstream()).account("mallory")).view()["balance"] == 0
    finally:
        await admin.close()


async def test_gateway_user_writes_the_keys_bucket(nats_url, uid) -> None:
    gw = await connect(nats_role_url(nats_url, "gateway"))
    try:
        record, _ = await KeyStore(gw.jetstream(timeout=30)).create(f"acme-{uid}")
        assert record.owner == f"acme-{uid}"
        assert (await Ledger(gw.jetstream(timeout=30)).add(f"acme-{uid}", 5.0)).view()["balance"] == 5.0
    finally:
        await gw.close()
