"""Job records in the JetStream KV bucket, against a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devstack.procs import start_nats
from services.common import bus
from services.common.jobstore import Conflict, JobStore
from services.common.record import Job
from videobg import nats_subjects
from videobg.errors import NotFound

pytestmark = pytest.mark.integration


def _job(job_id: str, **kw) -> Job:
    return Job.model_validate({"id": job_id, "owner": "alice", "dialect": "pixelcut", "model": "human", **kw})


async def test_create_get_and_conflict(jetstream, uid: str) -> None:
    async with jetstream() as (_, js):
        jobs = JobStore(js)
        rev = await jobs.create(_job(uid))
        assert rev > 0
        job = await jobs.get(uid)
        assert (job.id, job.status, job.progress, job.stage_seconds) == (uid, "queued", 0, {})
        assert job.created == job.updated and job.created.endswith("Z")
        with pytest.raises(Conflict):
            await jobs.create(_job(uid, owner="mallory"))
        assert (await jobs.get(uid)).owner == "alice"
        with pytest.raises(NotFound):
            await jobs.get(f"{uid}missing")


async def test_concurrent_updates_lose_nothing(jetstream, uid: str) -> None:
    """Several writers on separate connections, read-modify-write the same record at once: the
    compare-and-set retry makes every increment count."""
    writers, increments = 6, 10

    def add(n: int, job: Job) -> Job:
        job.credits += 1
        job.stage_seconds = {**job.stage_seconds, f"w{n}": job.stage_seconds.get(f"w{n}", 0) + 1}
        return job

    async def writer(n: int) -> None:
        async with jetstream() as (_, js):
            jobs = JobStore(js)
            for _ in range(increments):
                await jobs.update(uid, lambda j: add(n, j))

    async with jetstream() as (_, js):
        jobs = JobStore(js)
        await jobs.create(_job(uid, credits=0))
        await asyncio.gather(*(writer(n) for n in range(writers)))
        job = await jobs.get(uid)
        assert job.credits == writers * increments
        assert all(job.stage_seconds[f"w{n}"] == increments for n in range(writers))


async def test_transition_happens_exactly_once(jetstream, uid: str) -> None:
    async with jetstream() as (_, js):
        jobs = JobStore(js)
        await jobs.create(_job(uid, status="processing"))
        results = await asyncio.gather(
            *(
                jobs.transition(uid, {"processing"}, "completed", progress=100, result_key=f"r{i}")
                for i in range(8)
            )
        )
        assert sorted(results) == [False] * 7 + [True]
        winner = results.index(True)
        job = await jobs.get(uid)
        assert (job.status, job.progress, job.result_key) == ("completed", 100, f"r{winner}")
        # from a state not allowed: refused, record untouched
        assert not await jobs.transition(uid, {"queued"}, "processing", stage="segment")
        assert (await jobs.get(uid)).status == "completed" and (await jobs.get(uid)).stage == ""
        with pytest.raises(ValueError):
            await jobs.transition(uid, {"completed"}, "exploded")


async def test_list_filters_by_owner_newest_first(jetstream, uid: str) -> None:
    async with jetstream() as (_, js):
        jobs = JobStore(js)
        for i in range(4):
            await jobs.create(_job(f"{uid}-{i}", owner=f"o{uid}"))
        await jobs.create(_job(f"{uid}-x", owner=f"p{uid}"))
        await jobs.delete(f"{uid}-3")
        listed = await jobs.list(owner=f"o{uid}")
        assert [j.id for j in listed] == [f"{uid}-2", f"{uid}-1", f"{uid}-0"]
        assert [j.id for j in await jobs.list(owner=f"o{uid}", limit=2)] == [f"{uid}-2", f"{uid}-1"]
        assert {j.id for j in await jobs.list()} >= {f"{uid}-0", f"{uid}-x"}


async def _until(cond, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_records_and_queued_work_survive_a_nats_restart(tmp_path: Path, uid: str) -> None:
    """Stop nats-server, start it again on the same store dir and port: the job record, the queued work
    and the streams are all there, and a client that stayed connected reconnects by itself."""
    server = start_nats(tmp_path / "nats")
    try:
        nc = await bus.connect(server.url)
        try:
            js = nc.jetstream()
            await bus.ensure_streams(js)
            jobs = JobStore(js)
            await jobs.create(_job(uid, status="processing", progress=40))
            await bus.publish_work(js, nats_subjects.WORK_SEGMENT, {"job_id": uid}, msg_id=f"{uid}:segment")

            server.stop()
            server = start_nats(tmp_path / "nats", port=server.port, http_port=server.ports["http"])

            await _until(lambda: not nc.is_connected)  # the client notices the old server went away
            await _until(lambda: nc.is_connected)  # and reconnects on its own (reconnect_time_wait 1 s)
            job = await jobs.get(uid)
            assert (job.status, job.progress) == ("processing", 40)
            assert await jobs.transition(uid, {"processing"}, "completed")
            info = await js.stream_info(nats_subjects.WORK_STREAM)
            assert info.state.messages == 1
        finally:
            await nc.close()
    finally:
        server.stop()
