"""What the gateway does, whatever the dialect: submit, get, cancel and watch jobs.

Every public dialect (REST, gRPC) translates its request into a `jobspec` dict and calls these methods;
none of them touches NATS or S3 directly. A job is born here:

    jobspec.validate(spec) -> JobStore.create({id, status: queued, spec, ...})
        -> publish vbg.work.ingest {"job_id"} with Nats-Msg-Id "{id}:ingest" -> event {status: queued}

Stages move it on (processing, completed / failed); `cancel` moves it to cancelled and the stages see that
on the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from services.common import bus, jobspec
from services.common.jobstore import TERMINAL, Job, JobStore
from services.common.objstore import ObjectStore
from services.gateway.settings import GatewaySettings
from videobg import keys, metrics, subjects
from videobg.errors import Conflict, NotFound, Transient
from videobg.media.formats import DEFAULT_FORMAT, get_format

log = logging.getLogger(__name__)

CANCELLABLE = ("draft", "queued", "processing")
_IDEMPOTENCY_NS = uuid.UUID("5d3f0b8e-9a41-4c52-8f0e-6b7a4e1c2d90")  # fixed: same key -> same job id


@dataclass(frozen=True)
class Caller:
    """Who is calling. Authentication (API keys), credits and rate limits will resolve a real owner; until
    then every caller is the anonymous owner (see services/gateway/auth.py)."""

    owner: str
    key_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.key_id is None


ANONYMOUS = Caller(owner="anonymous")


def is_terminal(event_or_job: dict[str, Any]) -> bool:
    return event_or_job.get("status") in TERMINAL


def job_id_for(owner: str, idempotency_key: str) -> str:
    """A retried submit with the same key lands on the same record (and the same work message)."""
    if not idempotency_key:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_IDEMPOTENCY_NS, f"{owner}\x00{idempotency_key}"))


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        nc: NatsClient,
        js: JetStreamContext,
        jobs: JobStore,
        objects: ObjectStore,
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.js = js
        self.jobs = jobs
        self.objects = objects

    def healthy(self) -> bool:
        """Serving needs NATS at once (records, work); S3 is only signed for, not called."""
        return bool(self.nc.is_connected)

    # --- submit ------------------------------------------------------------------------------------

    async def submit(self, spec: jobspec.Spec, *, idempotency_key: str = "") -> Job:
        spec = jobspec.validate(spec)
        job_id = job_id_for(spec.get("owner", ""), idempotency_key)
        record: Job = {
            "id": job_id,
            "owner": spec.get("owner", ""),
            "dialect": spec.get("dialect", ""),
            "spec": spec,
            "status": "queued",
            "progress": 0,
            "stage": "ingest",
        }
        try:
            await self.jobs.create(record)
            metrics.JOBS_SUBMITTED.labels(**metrics.job_labels(record)).inc()
        except Conflict:
            existing = await self.jobs.get(job_id)
            if existing.get("spec") != spec:
                raise Conflict("this idempotency key was already used for a different job") from None
            if existing.get("status") != "queued":
                return existing
            # Queued but perhaps never published (a crash between create and publish): publish again;
            # within the duplicate window JetStream drops the copy.
        # The job's first event goes out before its work. Events inform; the record is the truth.
        with contextlib.suppress(Transient):
            await bus.publish_event(
                self.js,
                job_id,
                {"status": "queued", "stage": "ingest", "progress": 0},
                msg_id=f"{job_id}:queued",
            )
        try:
            await bus.publish_work(
                self.js, subjects.WORK_INGEST, {"job_id": job_id}, msg_id=f"{job_id}:ingest"
            )
        except Transient as e:
            if await self.jobs.transition(job_id, ("queued",), "failed", error_code=e.code, error=e.message):
                metrics.count_job(record, "failed", e.code)
            raise
        log.info("job %s queued (%s, owner %s)", job_id, record["dialect"], record["owner"])
        return await self.jobs.get(job_id)

    # --- read ----------------------------------------------------------------------------------------

    async def get(self, job_id: str, caller: Caller | None = None) -> Job:
        """The record; with a `caller`, only if it is theirs (another owner's job reads as not found)."""
        try:
            keys.check_id("job id", job_id)
        except ValueError:
            raise NotFound(f"job {job_id} not found") from None
        job = await self.jobs.get(job_id)
        if caller is not None and not caller.anonymous and job.get("owner") != caller.owner:
            raise NotFound(f"job {job_id} not found")
        return job

    def result_key(self, job: Job) -> str:
        if job.get("result_key"):
            return str(job["result_key"])
        fmt = get_format((job.get("spec") or {}).get("output_format") or DEFAULT_FORMAT)
        return keys.result(job["id"], fmt.extension)

    def result_url(self, job: Job) -> str | None:
        """A presigned, expiring GET URL of the result; None until the job completed."""
        if job.get("status") != "completed":
            return None
        return self.objects.presigned_get(self.result_key(job), self.settings.result_url_ttl_s)

    # --- cancel --------------------------------------------------------------------------------------

    async def cancel(self, job_id: str, caller: Caller | None = None) -> Job:
        """Cancelling a cancelled job is a no-op; a completed or failed one cannot be cancelled."""
        await self.get(job_id, caller)
        changed = await self.jobs.transition(
            job_id, CANCELLABLE, "cancelled", error_code="cancelled", error="the job was cancelled"
        )
        job = await self.jobs.get(job_id)
        if changed:
            log.info("job %s cancelled", job_id)
            metrics.count_job(job, "cancelled")
            with contextlib.suppress(Transient):
                await bus.publish_event(
                    self.js,
                    job_id,
                    {"status": "cancelled", "stage": job.get("stage", ""), "error_code": "cancelled"},
                    msg_id=f"{job_id}:cancelled",
                )
        elif job.get("status") != "cancelled":
            raise Conflict(f"job {job_id} is already {job.get('status')} and cannot be cancelled")
        return job

    # --- watch ---------------------------------------------------------------------------------------

    async def watch(self, job_id: str, caller: Caller | None = None) -> AsyncIterator[dict[str, Any]]:
        """The job's events from its first, then live, until one says the job ended. Stages publish the
        events; should the job end without one (a stage that died at the wrong moment), the record
        decides: once it has been terminal for two polls, a last event is made from it."""
        await self.get(job_id, caller)  # NotFound before the stream starts
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def follow_events() -> None:
            async with contextlib.aclosing(bus.watch_events(self.js, job_id, until=is_terminal)) as events:
                async for event in events:
                    await queue.put(event)

        async def follow_record() -> None:
            seen_terminal = 0
            while True:
                await asyncio.sleep(self.settings.watch_poll_s)
                try:
                    job = await self.jobs.get(job_id)
                except (Transient, NotFound):
                    continue
                seen_terminal = seen_terminal + 1 if is_terminal(job) else 0
                if seen_terminal >= 2:
                    await queue.put(event_from_job(job) | {"synthetic": True})
                    return

        tasks = [asyncio.create_task(follow_events()), asyncio.create_task(follow_record())]
        try:
            while True:
                event = await queue.get()
                yield event
                if is_terminal(event):
                    return
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def event_from_job(job: Job) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "stage": job.get("stage", ""),
        "status": job.get("status", ""),
        "progress": job.get("progress", 0),
        "error_code": job.get("error_code", ""),
        "message": job.get("error", ""),
        "at": job.get("updated", ""),
    }
