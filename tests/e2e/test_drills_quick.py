"""The submission-durability drill (bench/drills.py submit), small enough for the test suite: 20 concurrent
REST submissions, the gateway killed with SIGKILL and replaced, and every acknowledged job is still there,
with exactly one ingest work message each. Job records and work live in JetStream, not in the gateway.

The stack here is the gateway alone (with nats-server and SeaweedFS): no stage takes the work, so the
queue can be counted, and the test does not wait for any matting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from devstack.stack import Stack, StackConfig
from services.gateway.settings import GatewaySettings
from videobg import nats_subjects

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

N = 20
VIDEO_URL = "https://example.com/clip.mp4"  # never fetched: no ingest runs in this stack


@pytest.fixture(scope="module")
def gateway_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"VBG_GATEWAY_AUTH_REQUIRED": "false"} if "auth_required" in GatewaySettings.model_fields else {}
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("drill"), http_port=0, services=("gateway",), env=env
    )
    with Stack(config) as stack:
        yield stack


async def submit_all(base: str) -> list[httpx.Response]:
    body = {"video_url": VIDEO_URL, "background_color": "#00FF00", "output_format": "mp4_h264"}
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=30.0) as c:

        async def one() -> httpx.Response:
            async with sem:
                return await c.post("/v1/video/remove-background", json=body)

        return await asyncio.gather(*(one() for _ in range(N)))


async def ingest_queue_depth(url: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(nats_subjects.WORK_STREAM, nats_subjects.CONSUMER_INGEST)
        return int(info.num_pending)
    except nats.js.errors.NotFoundError:  # no ingest ever ran: count the stream's messages instead
        info = await nc.jetstream().stream_info(nats_subjects.WORK_STREAM)
        return int(info.state.messages)
    finally:
        await nc.close()


def test_submissions_survive_gateway_kill(gateway_stack: Stack, tmp_path: Path) -> None:
    stack = gateway_stack
    replies = asyncio.run(submit_all(stack.url))
    assert [r.status_code for r in replies] == [202] * N, [r.text for r in replies if r.status_code != 202]
    ids = [r.json()["job_id"] for r in replies]
    assert len(set(ids)) == N

    old_pid = stack.services["gateway"].pid
    stack.kill("gateway")
    stack.start_service("gateway")
    assert stack.services["gateway"].pid != old_pid

    with httpx.Client(base_url=stack.url, trust_env=False, timeout=10.0) as c:
        seen = {j: c.get(f"/v1/video/remove-background/job/{j}").json() for j in ids}
    assert {j: v.get("job_id") for j, v in seen.items()} == {j: j for j in ids}, "a submitted job was lost"
    assert all(v["status"] == "queued" for v in seen.values()), seen
    assert stack.nats is not None
    assert asyncio.run(ingest_queue_depth(stack.nats.url)) == N, "one ingest message per job, no more"
