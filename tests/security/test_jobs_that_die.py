"""Jobs that die or are abandoned: compute already spent is charged, a poison job ends `failed`, a stalled
one is swept, and no settlement ever takes more than was reserved.

The gateway runs in-process with keys required; the test plays the stages on the records, except for
the poison job, where a real stage worker (services/common/stage_wiring.py) crashes on every delivery.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from services.common import bus, jobrun, stage_wiring
from services.common.jobstore import JobStore, now_iso
from services.common.objstore import ObjectStore
from services.common.record import Job
from services.gateway.credits import to_milli
from services.ingest.stage import IngestSettings
from tests.integration import gatewaykit, stagekit
from videobg import nats_subjects

pytestmark = [pytest.mark.security, pytest.mark.integration]

VIDEO = gatewaykit.VIDEO


async def wait_for(pred: Callable[[], Awaitable[bool]], timeout_s: float = 40.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not await pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.fixture
def settings(nats_url: str, s3_endpoint: str, object_store: ObjectStore):
    return gatewaykit.settings_for(nats_url, s3_endpoint, object_store)


def processed(seconds: float) -> Callable[[Job], Job]:
    """A JobStore.update function: the segmenter's report of the span matted so far."""

    def change(job: Job) -> Job:
        job.processed_seconds = seconds
        return job

    return change


async def submit(http, key: dict[str, str]) -> str:
    """A new job each call (identical bodies would be one job: the gateway's implicit idempotency)."""
    url = f"{VIDEO}?n={uuid.uuid4().hex}"
    r = await http.post("/v1/jobs", json={"video_url": url, "model": "light"}, headers=key)
    assert r.status_code in (200, 201, 202), r.text
    return r.json()["id"]


async def test_cancel_after_processing_started_is_charged_for_what_was_processed(settings) -> None:
    async with gatewaykit.gateway(settings) as (gw, http):
        owner, key = await gatewaykit.tenant(gw, credits=100)
        job_id = await submit(http, key)
        store = gw.gateway.jobs
        assert await store.transition(job_id, ("queued",), "processing", stage="segment", billed_seconds=30.0)
        await store.update(job_id, processed(8.0))  # as the segmenter reports
        r = await http.post(f"/internal/jobs/{job_id}/cancel", headers=key)
        assert r.status_code == 200, r.text
        job = await store.get(job_id)
        assert job.status == "cancelled"
        assert job.billing.state == "charged" and job.credits == 6.0  # 8 s at 45/min
        account = await gw.gateway.ledger.account(owner)
        assert account.used_milli == to_milli(6.0) and account.reservations == 0


async def test_deadline_failure_is_charged_ours_is_free(settings) -> None:
    async with gatewaykit.gateway(settings) as (gw, http):
        owner, key = await gatewaykit.tenant(gw, credits=100)
        spent, ours = await submit(http, key), await submit(http, key)
        for job_id in (spent, ours):
            await gw.gateway.jobs.update(job_id, processed(20.0))
        await gatewaykit.finish(gw, spent, "failed", error_code="deadline_exceeded", error="segment deadline")
        await gatewaykit.finish(gw, ours, "failed", error_code="transient_error", error="S3 away")

        async def settled() -> bool:
            return (await gw.gateway.ledger.account(owner)).reservations == 0

        await wait_for(settled, what="both jobs settled")
        assert (await gw.gateway.jobs.get(spent)).credits == 15.0  # 20 s at 45/min
        assert (await gw.gateway.jobs.get(ours)).credits == 0.0
        assert (await gw.gateway.ledger.account(owner)).used_milli == to_milli(15.0)


async def test_settling_never_takes_more_than_the_reservation(settings) -> None:
    """A trimmed job reserves its trim (10 s); even a record claiming 600 s billed is charged 10 s."""
    async with gatewaykit.gateway(settings) as (gw, http):
        owner, key = await gatewaykit.tenant(gw, credits=100)
        r = await http.post(
            "/v1/proxy/studio-background", json={"videoUrl": VIDEO, "start": 0, "end": 10}, headers=key
        )
        assert r.status_code in (200, 201, 202), r.text
        job_id = r.json()["job"]["id"]
        reserved = (await gw.gateway.jobs.get(job_id)).billing.reserved_milli
        assert reserved == to_milli(10 * gw.gateway.billing.rates.rate("") / 60)
        await gatewaykit.finish(gw, job_id, "completed", billed_seconds=600.0)
        job = await gw.gateway.billing.settle(job_id)
        assert job is not None and job.billing.charged_milli == reserved
        account = await gw.gateway.ledger.account(owner)
        assert account.balance_milli == to_milli(100) - reserved and account.reservations == 0


async def test_reservation_ceiling_is_the_max_duration_setting(
    nats_url: str, s3_endpoint: str, object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDEOBG_MAX_DURATION_S", "20")
    settings = gatewaykit.settings_for(nats_url, s3_endpoint, object_store)
    async with gatewaykit.gateway(settings) as (gw, http):
        _, key = await gatewaykit.tenant(gw, credits=100)
        job_id = await submit(http, key)
        billing = (await gw.gateway.jobs.get(job_id)).billing
        assert billing.reserved_seconds == 20.0 and billing.reserved_milli == to_milli(15.0)


async def test_poison_job_fails_and_releases_its_reservation(
    settings, nats_url: str, s3_endpoint: str, object_store: ObjectStore
) -> None:
    """The ingest stage dies (no ack, no error) on every delivery; after max_deliver the job is failed
    with stage_crashed and its credits come back. Before the fix it stayed `processing` for ever."""
    stage_settings = stagekit.stage_settings(  # the ingest stage's own NATS user, as deployed
        IngestSettings,
        nats_url,
        s3_endpoint,
        object_store,
        ack_wait_s=1.0,
        max_deliver=2,
        backoff_s=(0.1,),
        concurrency=1,
    )
    release = threading.Event()
    attempts: list[str] = []
    poison = ""

    def crash(run: jobrun.StageRun) -> None:
        """The poison job never returns (its process is killed meanwhile); other tests' leftover ingest
        work in the shared queue is simply acked."""
        if run.job_id == poison:
            attempts.append(run.job_id)
            release.wait(60)

    async with gatewaykit.gateway(settings) as (gw, http):
        owner, key = await gatewaykit.tenant(gw, credits=100)
        nc = await bus.connect(stage_settings.nats_url, name="poison-test")
        js = nc.jetstream()
        deps = jobrun.Deps(stage_settings, nc, js, JobStore(js), object_store, asyncio.get_running_loop())
        try:
            job_id = poison = await submit(http, key)

            async def failed() -> bool:
                return (await gw.gateway.jobs.get(job_id)).status == "failed"

            # "replicas" take the message and die with it (no ack, no nak, no error), one after another,
            # until the job is given up. A delivery may also die unseen (sent to the pull request of a
            # replica that has just died): so the test counts no exact number of replicas
            deadline = time.monotonic() + 60
            while not await failed():
                assert time.monotonic() < deadline, "the poison job was never given up"
                worker = stage_wiring.stage_worker(deps, nats_subjects.WORK_INGEST, "ingest", "ingest", crash)
                task = asyncio.create_task(worker.run())
                before = attempts.count(job_id)

                async def taken_or_failed(before: int = before) -> bool:
                    return attempts.count(job_id) > before or await failed()

                await wait_for(taken_or_failed, what="a delivery of the poison job")
                task.cancel()  # the process dies
                await asyncio.gather(task, return_exceptions=True)
            job = await gw.gateway.jobs.get(job_id)
            assert job.error_code == "stage_crashed", job
            assert "2 times" in job.error
            assert 1 <= attempts.count(job_id) <= 2  # never run more than max_deliver times

            async def released() -> bool:
                return (await gw.gateway.ledger.account(owner)).reservations == 0

            await wait_for(released, what="the reservation to be released")
            assert (await gw.gateway.ledger.account(owner)).used_milli == 0
        finally:
            release.set()
            await nc.close()


async def test_stalled_job_is_swept(settings) -> None:
    async with gatewaykit.gateway(settings.model_copy(update={"job_stall_s": 600.0})) as (gw, http):
        owner, key = await gatewaykit.tenant(gw, credits=100)
        stalled, alive = await submit(http, key), await submit(http, key)
        store = gw.gateway.jobs
        for job_id in (stalled, alive):
            assert await store.transition(job_id, ("queued",), "processing", stage="segment")
        # the stalled job's record was last written an hour ago (written as a crashed stage left it)
        record = (await store.get(stalled)).model_copy(update={"updated": "2000-01-01T00:00:00.000000Z"})
        kv = await gw.gateway.js.key_value(nats_subjects.JOBS_BUCKET)
        await kv.put(stalled, record.to_json())
        assert await gw.gateway.sweep_stalled() == [stalled]
        job = await store.get(stalled)
        assert job.status == "failed" and job.error_code == "stage_crashed"
        assert (await store.get(alive)).status == "processing"
        assert (await gw.gateway.ledger.account(owner)).reservations == 1  # only the live job holds credits
        assert now_iso() > record.updated
