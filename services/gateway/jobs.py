"""What the gateway does, whatever the dialect: create, start, get, cancel and watch jobs, and bill them.

Every public dialect (REST, gRPC) translates its request into a `JobSpec` (services/common/record.py)
and calls these methods; none of them touches NATS or S3 directly. A job is born here:

    spec.validated() -> [metered caller: reserve credits] -> JobStore.create(Job(id, status, spec, ...))
        -> publish vbg.work.ingest {"job_id"} with Nats-Msg-Id "{id}:ingest" -> event {status: queued}

A draft (`draft=True`) stops after the record; `start` reserves and publishes later. Stages move a job on
(processing, completed / failed); `cancel` moves it to cancelled and the stages see that on the record.
Once a job has ended its reservation is settled (charged or released, services/gateway/credits.py): on
its last event, which every gateway replica's queue-group subscription to `vbg.events.*` shares out,
and in a periodic sweep that catches anything missed.

Every record keeps what the seeds' checklists ask to persist per job: the spec (source, format,
background), `model` (resolved), `credits` (charged; 0 until then), `key_id`, and the final status with
`error_code` / `error`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from services.common import bus, logs
from services.common.jobstore import JobStore
from services.common.metrics import count_job, job_labels
from services.common.objstore import ObjectStore
from services.common.record import TERMINAL, Job, JobSpec, SourceRef, Status, SubmitProbe
from services.common.ssrf import check_webhook_url
from services.gateway import precheck
from services.gateway.api_keys import KeyStore
from services.gateway.assets import find_asset
from services.gateway.caller import Caller
from services.gateway.credits import Billing, Ledger, Rates, age_s
from services.gateway.settings import DEFAULT_CREDITS_PER_MINUTE, GatewaySettings
from videobg import metrics, nats_subjects, object_keys
from videobg.errors import Conflict, InvalidInput, NotFound, RateLimited, Transient, VideoBgError
from videobg.matte.session import check_text_prompt  # torch-free
from videobg.media.formats import get_format

log = logging.getLogger(__name__)

CANCELLABLE = (Status.DRAFT, Status.QUEUED, Status.PROCESSING)
STARTED = (Status.QUEUED, Status.PROCESSING, Status.COMPLETED)
QUEUE = "queue"  # Job.stage of a job whose work could not be queued: the client's retry starts it
_IDEMPOTENCY_NS = uuid.UUID("5d3f0b8e-9a41-4c52-8f0e-6b7a4e1c2d90")  # fixed: same key -> same job id
_SETTLE_QUEUE = "vbg-gateway-billing"  # queue group: each job-ending event is settled by one replica
# Queueing a new job's work during a NATS failover: each publish waits ENQUEUE_TRY_S for its ack, tried
# again within ENQUEUE_BUDGET_S (a leader election takes seconds), so a submit answers 202 or 503 in
# well under ten seconds.
ENQUEUE_TRY_S = 2.0
ENQUEUE_BUDGET_S = 6.0


@dataclass(frozen=True)
class Submitted:
    job: Job
    replayed: bool  # an Idempotency-Key retry: the job the first request made


def is_terminal(event: dict[str, Any]) -> bool:
    return event.get("status") in TERMINAL


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
        self.default_model = settings.core.default_model
        self.limits = settings.core.limits()
        self.keys = KeyStore(js, cache_s=settings.key_cache_s)
        self.ledger = Ledger(js)
        # configured rates override the defaults model by model, so every installed model has one
        per_minute = {**DEFAULT_CREDITS_PER_MINUTE, **settings.credits_per_minute}
        rates = Rates(per_minute, self.default_model, self.limits.max_duration_s)
        self.billing = Billing(self.ledger, jobs, rates)
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def healthy(self) -> bool:
        """Serving needs NATS at once (records, work); S3 is only signed for, not called."""
        return bool(self.nc.is_connected)

    # --- background: settling credits of ended jobs ---------------------------------------------------

    async def start_background(self) -> None:
        """Settle jobs as their last event arrives, and sweep periodically (see credits.py)."""
        self._sub = await self.nc.subscribe(
            nats_subjects.EVENTS_WILDCARD, queue=_SETTLE_QUEUE, cb=self._on_event
        )
        if self.settings.settle_sweep_s > 0:
            self._spawn(self._sweep_forever())

    async def stop_background(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_event(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(event, dict) and is_terminal(event) and isinstance(event.get("job_id"), str):
            self._spawn(self._settle_quietly(event["job_id"]))

    async def _settle_quietly(self, job_id: str) -> None:
        try:
            await self.billing.settle(job_id)
        except Exception as e:  # the sweep retries it
            log.warning("job %s: settling credits failed (%r); the sweep will retry", job_id, e)

    async def _sweep_forever(self) -> None:
        last_retention = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.settle_sweep_s)
            every = self.settings.retention_sweep_s
            if every > 0 and time.monotonic() - last_retention >= every:
                last_retention = time.monotonic()
                try:
                    await self.sweep_retention()
                except Exception as e:
                    log.warning("retention sweep failed: %r", e)
            try:
                await self.sweep_stalled()
            except Exception as e:
                log.warning("stalled-job sweep failed: %r", e)
            try:
                await self.billing.sweep(self.settings.orphan_reservation_s)
            except Exception as e:
                log.warning("credit sweep failed: %r", e)

    async def sweep_retention(self) -> int:
        """Delete uploads older than `upload_retention_s` and job files older than `job_retention_s` (the
        records themselves expire in NATS). Returns how many objects went."""
        s = self.settings
        gone = 0
        for prefix, keep_s in (("uploads/", s.upload_retention_s), ("jobs/", s.job_retention_s)):
            if keep_s <= 0:
                continue
            for key in await asyncio.to_thread(self.objects.keys_older_than, prefix, keep_s):
                with contextlib.suppress(NotFound):
                    await asyncio.to_thread(self.objects.delete, key)
                    gone += 1
        if gone:
            log.info("retention: deleted %d objects", gone)
        return gone

    async def sweep_stalled(self) -> list[str]:
        """Fail (stage_crashed) every processing job whose record has not changed for `job_stall_s`: its
        stage is gone without a word (the work message lost, every replica dead). Its reservation is then
        released like any failure of ours. Returns the ids it failed."""
        limit = self.settings.job_stall_s
        if limit <= 0:
            return []
        failed = []
        for job in await self.jobs.list(limit=1_000_000):
            if job.status != Status.PROCESSING or age_s(job.updated) < limit:
                continue
            message = f"the job made no progress for {limit:g} s (its stage stopped without a result)"
            # compare-and-set from processing: a stage that reports meanwhile keeps its job
            changed = await self.jobs.transition(
                job.id, (Status.PROCESSING,), Status.FAILED, error_code="stage_crashed", error=message
            )
            if changed:
                log.warning("job %s: %s", job.id, message)
                count_job(job, "failed", "stage_crashed")
                with contextlib.suppress(VideoBgError):
                    await self.billing.settle(job.id)
                event = {"status": "failed", "stage": job.stage, "error_code": "stage_crashed"}
                with contextlib.suppress(Transient):
                    await bus.publish_event(
                        self.js, job.id, {**event, "message": message}, msg_id=f"{job.id}:failed"
                    )
                failed.append(job.id)
        return failed

    # --- submit ------------------------------------------------------------------------------------

    async def submit(self, spec: JobSpec, *, idempotency_key: str = "") -> Job:
        """Unmetered, as the anonymous owner (trusted in-process callers and tests); gRPC and REST callers
        go through `create` with their `Caller`."""
        return (await self.create(spec, idempotency_key=idempotency_key)).job

    async def create(
        self,
        spec: JobSpec,
        *,
        caller: Caller | None = None,
        idempotency_key: str = "",
        fingerprint: str = "",
        draft: bool = False,
    ) -> Submitted:
        """Create a job (queued and published; or a draft) for `caller`. A caller with a key pays:
        InsufficientCredits (403) before anything is created if the reservation is not covered. With an
        `idempotency_key`, a retry returns the first job (`fingerprint` must match, else Conflict)."""
        spec = spec.validated()
        owner = spec.owner
        metered = caller is not None and not caller.anonymous
        job_id = job_id_for(owner, idempotency_key)
        if idempotency_key:
            with contextlib.suppress(NotFound):
                return await self._replay(await self.jobs.get(job_id), spec, fingerprint)
        elif fingerprint and metered and self.settings.implicit_idempotency_s > 0:
            assert caller is not None and caller.key_id is not None  # metered
            found, job_id = await self._implicit(owner, caller.key_id, fingerprint)
            if found is not None:
                return Submitted(found, replayed=True)
        # seed 004: the prompt is pro's; refused here for every front end (gRPC too), not in the segmenter
        check_text_prompt(spec.model or self.default_model, spec.text_prompt)
        if spec.webhook_url:
            await check_webhook_url(spec.webhook_url, self.settings.fetch_allow)  # before anything is held
        if caller is not None and not caller.anonymous:
            await self._check_assets(spec, caller)  # before the probe reads it
        if draft:
            await self._check_drafts(owner, caller)
        probed = await precheck.precheck(
            spec,
            self.objects,
            self.limits,
            budget_s=self.settings.submit_probe_s,
            head_bytes=self.settings.submit_probe_bytes,
            allow=self.settings.fetch_allow,
        )
        model = spec.model or self.default_model
        record = Job(
            id=job_id,
            owner=owner,
            dialect=spec.dialect,
            spec=spec,
            status=Status.DRAFT if draft else Status.QUEUED,
            stage="" if draft else "ingest",
            model=model,
            request_fingerprint=fingerprint,
            request_id=logs.REQUEST_ID.get() or "",
        )
        if probed is not None:  # what the submit probe learnt (precheck.py)
            record.submit_probe = SubmitProbe(
                size_bytes=probed.size_bytes, whole_file=probed.complete, seconds=probed.seconds
            )
        if caller is not None and metered:
            record.key_id = caller.key_id
            plan = self.billing.plan(spec, model, probed.seconds if probed else None)
            record.billing = await self.billing.hold(job_id, plan, draft=draft)
        try:
            await self.jobs.create(record)
            metrics.JOBS_SUBMITTED.labels(**job_labels(record)).inc()
        except Conflict:
            # A concurrent retry with the same key created it first. Its reservation is this one (they
            # are keyed by job id), so nothing is released here.
            return await self._replay(await self.jobs.get(job_id), spec, fingerprint)
        except BaseException:
            if record.billing is not None and record.billing.state != "estimated":
                with contextlib.suppress(Exception):
                    await self.billing.release(record.billing, job_id)
            raise
        if draft:
            log.info(
                "job %s drafted (%s, owner %s, key %s)",
                job_id,
                record.dialect,
                owner,
                record.key_id,
                extra={"job_id": job_id},
            )
            return Submitted(record, replayed=False)
        await self._enqueue(record)
        log.info(
            "job %s queued (%s, owner %s, key %s)",
            job_id,
            record.dialect,
            owner,
            record.key_id,
            extra={"job_id": job_id},
        )
        try:
            job = await self.jobs.get(job_id)
        except Transient:
            # The record and its work are both acknowledged: the job is accepted and will run. A read
            # that meets NATS mid-election must not turn that into a 503 (a client would see a refusal
            # and then be charged for the job); answer from the record as created.
            job = record
        return Submitted(job, replayed=False)

    async def _check_drafts(self, owner: str, caller: Caller | None) -> None:
        """A draft holds no credits, so drafts are capped per key (`max_open_drafts`): an owner cannot
        fill the job store with records that cost them nothing. Approximate under concurrent submits
        of one key (each counts before it creates), which bounds the overshoot by the concurrency."""
        cap = self.settings.max_open_drafts
        if cap <= 0:
            return
        key_id = caller.key_id if caller is not None else None
        open_drafts = sum(
            1
            for j in await self.jobs.list(owner=owner, limit=1_000_000)
            if j.status == "draft" and j.key_id == key_id
        )
        if open_drafts >= cap:
            raise RateLimited(
                f"This key has {open_drafts} open drafts, the limit is {cap}: start or cancel some first",
                retry_after_s=60.0,
            )

    async def _implicit(self, owner: str, key_id: str, fingerprint: str) -> tuple[Job | None, str]:
        """Seed 004: "Retry same request and verify no duplicate side effects", for clients that send no
        Idempotency-Key. The same body from the same API key within `implicit_idempotency_s` is the same
        request: (that job, its id). Else (None, the id a new job takes).

        Time is cut into windows of that length; the job id is a UUIDv5 of (owner, key, fingerprint, window),
        so concurrent retries collide on one id (the store's create is the lock), and the previous
        window's id is looked at too, with the job's age checked, so a retry just after a window boundary
        still finds its job. A job that failed or was cancelled is not replayed: sending the request
        again then makes a new job (a random id)."""
        window = float(self.settings.implicit_idempotency_s)
        now = time.time()
        index = int(now // window)
        scope = f"implicit\x00{key_id}\x00{fingerprint}"  # one client: the same key, not the whole owner
        current = job_id_for(owner, f"{scope}\x00{index}")
        for job_id in (current, job_id_for(owner, f"{scope}\x00{index - 1}")):
            try:
                job = await self.jobs.get(job_id)
            except NotFound:
                continue
            if job.status in (Status.FAILED, Status.CANCELLED):
                return None, str(uuid.uuid4())
            if job.request_fingerprint == fingerprint and now - _epoch(job.created) <= window:
                if job.status == Status.QUEUED:
                    await self._enqueue(job)  # as _replay: a crash between create and publish
                return job, job_id
        return None, current

    async def _check_assets(self, spec: JobSpec, caller: Caller) -> None:
        """Uploaded assets the job names (source, background image) must be the caller's own: another
        owner's upload reads as not found, as on GET /v1/uploads/{id}. Ingest checks again against the
        record's owner, so a record written by other means cannot borrow one either."""
        refs: tuple[SourceRef | None, ...] = (spec.source, spec.background.image)
        for ref in refs:
            if ref is not None and ref.asset_id:
                await find_asset(self.objects, ref.asset_id, caller)

    async def _replay(self, existing: Job, spec: JobSpec, fingerprint: str) -> Submitted:
        if fingerprint and existing.request_fingerprint:
            same = existing.request_fingerprint == fingerprint
        else:
            same = existing.spec == spec
        if not same:
            raise Conflict(
                "This Idempotency-Key was already used with a different request; use a new key for a new job"
            )
        if existing.status == Status.QUEUED:
            # Queued but perhaps never published (a crash between create and publish): publish again;
            # within the duplicate window JetStream drops the copy.
            await self._enqueue(existing)
        elif existing.status == Status.FAILED and existing.stage == QUEUE:
            return Submitted(await self._requeue(existing), replayed=False)
        return Submitted(existing, replayed=True)

    async def _requeue(self, job: Job) -> Job:
        """A job whose queueing failed (its client got a 503, its credits went back) was never started;
        the client's retry with the same Idempotency-Key starts it now, as a draft is started (`_queue`),
        a 503 again if NATS still cannot take it."""
        job = await self._queue(job, Status.FAILED, error_code="", error="")
        log.info("job %s queued on its client's retry", job.id, extra={"job_id": job.id})
        return job

    async def _queue(self, job: Job, from_status: Status, **fields: Any) -> Job:
        """Start a job that is not running (a draft, or one whose queueing failed): reserve its credits
        (403 if they are not there now), move it from `from_status` to queued, publish its work. A
        concurrent call that queued it first wins and its job is returned (the reservation, keyed by job
        id, is the same one); a job that went elsewhere meanwhile (cancelled) is a Conflict."""
        fields = {"stage": "ingest", "progress": 0.0, **fields}
        if job.billing is not None:
            fields["billing"] = await self.billing.hold(job.id, job.billing, draft=False)
        if not await self.jobs.transition(job.id, (from_status,), Status.QUEUED, **fields):
            await self.billing.settle(job.id)  # ended meanwhile: release what was just reserved
            current = await self.jobs.get(job.id)
            if current.status in STARTED:
                return current
            raise Conflict(f"job {job.id} is {current.status} and cannot be started")
        job = await self.jobs.get(job.id)
        await self._enqueue(job)
        return job

    async def _enqueue(self, record: Job) -> None:
        """The job's first event, then its work. Events inform; the record is the truth."""
        job_id = record.id
        with contextlib.suppress(Transient):  # informative only: never worth more than a short wait
            await bus.publish_event(
                self.js,
                job_id,
                {"status": "queued", "stage": "ingest", "progress": 0},
                msg_id=f"{job_id}:queued",
                timeout_s=ENQUEUE_TRY_S,
            )
        try:
            await self._publish_work(job_id)
        except Transient as e:
            # The client gets a 503: its job did not start and is not charged. `stage` QUEUE marks it,
            # so the same request sent again (its Idempotency-Key) queues this job after all (`_requeue`)
            failed = await self.jobs.transition(
                job_id, (Status.QUEUED,), Status.FAILED, error_code=e.code, error=e.message, stage=QUEUE
            )
            if failed:
                count_job(record, "failed", e.code)
                with contextlib.suppress(VideoBgError):
                    await self.billing.settle(job_id)
            raise

    async def _publish_work(self, job_id: str) -> None:
        """Publish the job's ingest work, trying again for up to ENQUEUE_BUDGET_S: a NATS stream leader
        lost moments ago leaves publishes unanswered until the next is elected (seconds), and a retry is
        safe, since a copy that was stored but whose ack was lost is dropped by its Nats-Msg-Id. Raises
        the last Transient when the budget is spent."""
        end = time.monotonic() + ENQUEUE_BUDGET_S
        while True:
            try:
                await bus.publish_work(
                    self.js,
                    nats_subjects.WORK_INGEST,
                    {"job_id": job_id},
                    msg_id=f"{job_id}:ingest",
                    timeout_s=ENQUEUE_TRY_S,
                )
                return
            except Transient as e:
                if time.monotonic() + ENQUEUE_TRY_S > end:
                    raise
                log.warning("job %s: queueing its work failed (%s); trying again", job_id, e.message)
                await asyncio.sleep(0.25)

    async def start(self, job_id: str, caller: Caller | None = None) -> Job:
        """Start a draft: reserve its credits (403 if they are not there now), queue it. Starting a job
        that has started already returns it; a failed or cancelled one cannot start (Conflict)."""
        job = await self.get(job_id, caller)
        if job.status != Status.DRAFT:
            if job.status in STARTED:
                return job
            raise Conflict(f"job {job_id} is {job.status} and cannot be started")
        job = await self._queue(job, Status.DRAFT)
        log.info(
            "job %s started (owner %s, key %s)",
            job_id,
            job.owner,
            job.key_id,
            extra={"job_id": job_id},
        )
        return await self.jobs.get(job_id)

    # --- read ----------------------------------------------------------------------------------------

    async def get(self, job_id: str, caller: Caller | None = None) -> Job:
        """The record; with a `caller`, only if it is theirs (another owner's job reads as not found)."""
        try:
            object_keys.check_id("job id", job_id)
        except ValueError:
            raise NotFound(f"job {job_id} not found") from None
        job = await self.jobs.get(job_id)
        if caller is not None and not caller.anonymous and job.owner != caller.owner:
            raise NotFound(f"job {job_id} not found")
        return job

    def result_key(self, job: Job) -> str:
        if job.result_key:
            return job.result_key
        return object_keys.result(job.id, get_format(job.spec.output_format).extension)

    def result_url(self, job: Job) -> str | None:
        """A presigned, expiring GET URL of the result; None until the job completed."""
        if job.status != Status.COMPLETED:
            return None
        return self.objects.presigned_get(self.result_key(job), self.settings.result_url_ttl_s)

    # --- cancel --------------------------------------------------------------------------------------

    async def cancel(self, job_id: str, caller: Caller | None = None) -> Job:
        """Cancelling a cancelled job is a no-op; a completed or failed one cannot be cancelled."""
        await self.get(job_id, caller)
        changed = await self.jobs.transition(
            job_id, CANCELLABLE, Status.CANCELLED, error_code="cancelled", error="the job was cancelled"
        )
        job = await self.jobs.get(job_id)
        if changed:
            log.info("job %s cancelled", job_id, extra={"job_id": job_id})
            count_job(job, "cancelled")
            with contextlib.suppress(VideoBgError):
                job = await self.billing.settle(job_id) or job
            with contextlib.suppress(Transient):
                await bus.publish_event(
                    self.js,
                    job_id,
                    {"status": "cancelled", "stage": job.stage, "error_code": "cancelled"},
                    msg_id=f"{job_id}:cancelled",
                )
        elif job.status != Status.CANCELLED:
            raise Conflict(f"job {job_id} is already {job.status} and cannot be cancelled")
        return job

    async def delete(self, job_id: str, caller: Caller | None = None) -> Job:
        """DELETE /v1/jobs/{id}: a job still running (or a draft) is cancelled; a finished one keeps its
        record (status, billing) but its stored objects (source, mattes, result) are deleted, and its
        result reads as expired from then on."""
        job = await self.get(job_id, caller)
        if job.status in CANCELLABLE:
            with contextlib.suppress(Conflict):  # it finished meanwhile: delete its objects instead
                return await self.cancel(job_id, caller)
            job = await self.jobs.get(job_id)
        removed = await asyncio.to_thread(self.objects.delete_prefix, object_keys.job_prefix(job_id))
        log.info(
            "job %s: result deleted by its owner (%d objects)", job_id, removed, extra={"job_id": job_id}
        )
        return await self.jobs.update(job_id, _deleted)

    # --- listing -------------------------------------------------------------------------------------

    async def list_jobs(
        self, caller: Caller | None, *, limit: int = 20, cursor: str = "", statuses: Collection[str] = ()
    ) -> tuple[list[Job], str | None]:
        """The caller's jobs, newest first, `limit` at a time: (page, cursor of the next page or None).
        The cursor is opaque to clients: the (created, id) of the page's last job, so pages stay stable
        while new jobs arrive. `statuses` filters on our statuses (empty: all). An anonymous caller
        (auth off) lists every job."""
        after = _decode_cursor(cursor)
        owner = None if caller is None or caller.anonymous else caller.owner
        jobs = await self.jobs.list(owner=owner, limit=1_000_000)
        page: list[Job] = []
        for job in jobs:  # newest first
            position = (job.created, job.id)
            if after is not None and position >= after:
                continue
            if statuses and job.status not in statuses:
                continue
            page.append(job)
            if len(page) > limit:
                break
        more = len(page) > limit
        page = page[:limit]
        next_cursor = _encode_cursor(page[-1]) if more and page else None
        return page, next_cursor

    # --- usage ---------------------------------------------------------------------------------------

    async def usage(self, caller: Caller) -> dict[str, Any]:
        """The caller's credits (after settling its ended jobs) and its jobs by status."""
        credits = None
        if not caller.anonymous:
            for job_id in await self.ledger.reservations(caller.owner):
                await self.billing.settle(job_id)
            credits = (await self.ledger.account(caller.owner)).view()
        jobs = await self.jobs.list(owner=caller.owner, limit=1_000_000)
        by_status = Counter(j.status.value for j in jobs)
        billed = sum(j.billed_seconds or 0.0 for j in jobs if j.status == Status.COMPLETED)
        return {
            "owner": caller.owner,
            "key_id": caller.key_id,
            "metered": not caller.anonymous,
            "credits": credits,
            "credits_per_minute": {m: float(r) for m, r in self.billing.rates.per_minute.items()},
            "default_model": self.default_model,
            "jobs": {"total": len(jobs), "by_status": dict(sorted(by_status.items()))},
            "billed_seconds": round(billed, 3),
        }

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
                seen_terminal = seen_terminal + 1 if job.terminal else 0
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


def _deleted(job: Job) -> Job:
    job.result_expired = job.deleted = True
    return job


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created, job.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return str(created), str(job_id)
    except (ValueError, TypeError):
        raise InvalidInput("cursor is not one this API handed out (use next_cursor as given)") from None


def _epoch(iso_time: Any) -> float:
    """A record's ISO-8601 timestamp -> unix seconds (0 when absent or unreadable)."""
    try:
        return datetime.fromisoformat(str(iso_time).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def event_from_job(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "stage": job.stage,
        "status": job.status.value,
        "progress": job.progress,
        "error_code": job.error_code,
        "message": job.error,
        "at": job.updated,
    }
