"""A webhook receiver that trickles its answer (a byte of the status line every half second) must cost
one attempt of `webhook_timeout_s`, not hold the dispatcher: before the fix httpx's per-read timeout
was reset by every byte and the attempt never ended."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.common import bus
from services.common.objstore import ObjectStore
from services.common.record import JobSpec
from services.gateway.server import running
from services.gateway.webhooks.dispatch import dispatching
from tests.integration import gatewaykit
from tests.security.trickle import trickling_server

pytestmark = [pytest.mark.security, pytest.mark.integration]


async def test_trickling_receiver_costs_one_bounded_attempt(
    nats_url: str, s3_endpoint: str, object_store: ObjectStore
) -> None:
    settings = gatewaykit.server_settings(
        nats_url,
        s3_endpoint,
        object_store,
        auth_required=False,
        fetch_allow="127.0.0.0/8",
        webhook_secret="security-test-secret",
        webhook_timeout_s=2.0,
        webhook_backoff_s=60.0,  # one attempt is all this test looks at
    )
    with trickling_server(every_s=0.5, where="header") as receiver:
        async with running(settings) as gw, dispatching(gw.gateway):
            spec = JobSpec.model_validate(
                {"source": {"url": gatewaykit.VIDEO}, "output_format": "mp4_h264", "webhook_url": receiver.url,
                 "owner": "anonymous", "dialect": "test"}
            )  # fmt: skip
            job_id = (await gw.gateway.submit(spec)).id
            store = gw.gateway.jobs
            assert await store.transition(job_id, ("queued",), "processing", stage="ingest", progress=1)
            await bus.publish_event(gw.gateway.js, job_id, {"stage": "ingest", "status": "processing"})
            deadline = time.monotonic() + 40.0
            while True:
                state = (await store.get(job_id)).webhook.events.get("job.started")
                if state and state.attempts:
                    break
                assert time.monotonic() < deadline, "the trickling receiver's attempt never ended"
                await asyncio.sleep(0.2)
    assert receiver.connections >= 1
    assert state.delivered is False and state.last_status is None
    assert "did not answer within 2 s" in state.last_error
