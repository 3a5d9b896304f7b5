"""One stage of one job, as stage code sees it: `Deps` (what a stage process holds: settings, NATS, the job
store, S3, its event loop) and `StageRun` (the job's record, progress, deadline, events, scratch space).

Stage code is synchronous (decoding, inference and encoding block) and runs in threads: the NATS worker
hands each delivery to a thread, the gRPC server's handlers run in its thread pool. It reaches the asyncio
side, where the NATS client lives (job records, events, work publishes), through `Deps.call`. A worker
delivery and a gRPC call of the same stage go through the same `Deps.run_stage`, so both behave alike.

Failures, by `videobg.errors.ERROR_TABLE`:
    permanent (TERM/ACK codes)  the job is marked failed with the code and a `failed` event goes out; the
                                worker then terminates the message, an RPC returns the mapped status
    retryable (NAK codes, bugs) the message is nak'ed with backoff; after `max_deliver` attempts the
                                worker's give-up hook (services/common/stage_wiring.py) fails the job
                                with transient_error
    job already failed/cancelled the message is acked: there is nothing left to do for it
Every stage of one job has `stage_deadline_s`; past it the stage raises Transient (a slow or stuck
neighbour is retried, not blamed on the input). After SIGTERM `Deps.shutdown` is set: stage code checks it
between frames (`StageRun.check`) and raises Transient, so the message is handed back to a replica.

Metrics (`videobg.metrics`): every stage run is timed (`StageRun.measured`), frames are counted by the stage
code (`StageRun.count_frames`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grpc_health.v1.health import HealthServicer
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from services.common import bus, logs
from services.common import metrics as service_metrics
from services.common.jobstore import JobStore
from services.common.objstore import ObjectStore
from services.common.record import FAILABLE, Job, Status, progress_of
from services.common.settings import StageSettings
from videobg import metrics, nats_subjects
from videobg.errors import (
    ERROR_TABLE,
    Cancelled,
    DeadlineExceeded,
    InvalidRequestBody,
    NatsAction,
    NotFound,
    Transient,
    VideoBgError,
    as_public,
)
from videobg.object_keys import check_id

log = logging.getLogger(__name__)

T = TypeVar("T")
# record fields that only grow: stages report them concurrently, and a redelivery starts again from 0.
# processed_seconds is the span of source matted so far, what a cancelled job is billed for.
GROWING = frozenset({"progress", "processed_seconds"})


# --- job helpers shared by the async and the thread side --------------------------------------------


def permanent(exc: BaseException) -> bool:
    """True when retrying cannot help: the error's table entry says TERM (or ACK)."""
    return isinstance(exc, VideoBgError) and exc.spec.nats is not NatsAction.NAK


def stopped_error(job: Job) -> VideoBgError | None:
    """The error a stage raises when it finds its job failed or cancelled (None while it is live)."""
    if job.status == Status.CANCELLED:
        return Cancelled(f"job {job.id} was cancelled")
    if job.status == Status.FAILED:
        code = job.error_code or "internal_error"
        return VideoBgError(job.error or "job failed", code=code if code in ERROR_TABLE else "internal_error")
    return None


async def fail_job(deps: Deps, job_id: str, stage: str, code: str, message: str) -> bool:
    """Mark the job failed (if it is not finished yet) and publish the `failed` event; True if this call
    did it. Never raises for a missing job: a deleted job has nobody left to tell."""
    try:
        changed = await deps.jobs.transition(
            job_id, FAILABLE, Status.FAILED, error_code=code, error=message, stage=stage
        )
    except NotFound:
        log.warning("job %s: cannot record failure %s, the job is gone", job_id, code)
        return False
    if changed:
        log.warning("job %s: failed in %s: %s: %s", job_id, stage, code, message)
        with contextlib.suppress(VideoBgError):  # the labels only; the failure is recorded already
            service_metrics.count_job(await deps.jobs.get(job_id), "failed", code)
        event = {"stage": stage, "status": "failed", "error_code": code, "message": message}
        await bus.publish_event(deps.js, job_id, event, msg_id=f"{job_id}:failed")
    return changed


def close_all(*iterators: Iterator[Any]) -> None:
    """Close generators in order (downstream first: closing a `threaded` stage joins its thread); one still
    running in a thread that did not stop in time is left to the garbage collector."""
    for it in iterators:
        close = getattr(it, "close", None)
        if close is not None:
            with contextlib.suppress(ValueError):  # "generator already executing"
                close()


def job_id_of(payload: dict[str, Any]) -> str:
    job_id = payload.get("job_id")
    if not isinstance(job_id, str):
        raise InvalidRequestBody("work message without a job_id")
    try:
        return check_id("job id", job_id)
    except ValueError as e:
        raise InvalidRequestBody(str(e)) from e


# --- dependencies and one stage run of one job ------------------------------------------------------


@dataclass
class Deps:
    """What a stage's handlers need; built once per process by `connect`."""

    settings: StageSettings
    nc: NatsClient
    js: JetStreamContext
    jobs: JobStore
    store: ObjectStore
    loop: asyncio.AbstractEventLoop
    shutdown: threading.Event = field(default_factory=threading.Event)
    health: HealthServicer | None = None
    call_timeout_s: float = 30.0

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the service's event loop from a stage thread and wait for its result."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("Deps.call from the event loop thread would deadlock; await instead")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(self.call_timeout_s)
        except concurrent.futures.TimeoutError as e:
            fut.cancel()
            raise Transient(f"NATS call timed out after {self.call_timeout_s:g} s") from e

    def stage_run(
        self,
        stage: str,
        job_id: str,
        *,
        deadline_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> StageRun:
        try:
            check_id("job id", job_id)
        except ValueError as e:
            raise InvalidRequestBody(str(e)) from e
        limit = (
            self.settings.stage_deadline_s
            if deadline_s is None
            else min(deadline_s, self.settings.stage_deadline_s)
        )
        return StageRun(self, job_id, stage, time.monotonic() + limit, limit, cancel)

    def run_stage(self, stage: str, job_id: str, fn: Callable[[StageRun], T], **kw: Any) -> T:
        """Run `fn` for one job (in the calling thread); a permanent error fails the job, then re-raises."""
        run = self.stage_run(stage, job_id, **kw)
        with logs.bound(
            job_id=job_id, stage=stage, request_id=""
        ):  # every log line of the stage names the job
            run.log.info("%s started", stage)
            try:
                with run.measured():
                    result = fn(run)
            except Exception as exc:
                # the full story (object keys, the server's answer) goes to the log, which names the
                # job; the record, which clients read, gets the public message only
                run.log.warning("%s failed: %s", stage, exc if isinstance(exc, VideoBgError) else repr(exc))
                if permanent(exc):
                    err = as_public(exc)
                    self.call(fail_job(self, job_id, stage, err.code, err.message))
                raise
            run.log.info("%s done in %.2f s", stage, run.elapsed)
            return result

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.drain(), 5.0)
        if not self.nc.is_closed:
            await self.nc.close()


class _JobLog(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"job {self.extra['job_id']} [{self.extra['stage']}]: {msg}", kwargs  # type: ignore[index]


@dataclass
class StageRun:
    """One stage of one job, seen from its (synchronous) stage code."""

    deps: Deps
    job_id: str
    stage: str
    deadline: float  # time.monotonic() by which the stage must be done
    deadline_s: float
    cancel: threading.Event | None = None  # set when the caller went away (a cancelled RPC)
    started: float = field(default_factory=time.monotonic)

    @property
    def log(self) -> logging.LoggerAdapter:
        return _JobLog(
            logging.getLogger(f"services.{self.stage}"), {"job_id": self.job_id, "stage": self.stage}
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def store(self) -> ObjectStore:
        return self.deps.store

    @contextlib.contextmanager
    def measured(self) -> Iterator[None]:
        """Around the whole stage: a success observes STAGE_DURATION, an error counts in STAGE_FAILURES
        under its public code. A generator closed early by its consumer (GeneratorExit) counts as neither."""
        try:
            yield
        except Exception as exc:
            metrics.STAGE_FAILURES.labels(stage=self.stage, error_code=as_public(exc).code).inc()
            raise
        metrics.STAGE_DURATION.labels(stage=self.stage).observe(self.elapsed)

    def count_frames(self, n: int = 1) -> None:
        """Count frames this stage has processed (FRAMES{stage})."""
        metrics.FRAMES.labels(stage=self.stage).inc(n)

    def check(self) -> None:
        """Between frames: stop when the process shuts down, the caller left or the deadline passed."""
        if self.deps.shutdown.is_set():
            raise Transient(f"{self.stage}: service shutting down; job {self.job_id} handed back")
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"{self.stage}: the caller cancelled job {self.job_id}")
        if self.remaining <= 0:
            raise DeadlineExceeded(
                f"{self.stage} of job {self.job_id} passed its deadline of {self.deadline_s:g} s"
            )

    def job(self) -> Job:
        job = self.deps.call(self.deps.jobs.get(self.job_id))
        if job.request_id:  # the submit's X-Request-Id: this stage's lines carry it too
            logs.REQUEST_ID.set(job.request_id)
        return job

    def live_job(self) -> Job:
        """The record; raises the job's own error if it has failed or was cancelled meanwhile."""
        job = self.job()
        err = stopped_error(job)
        if err is not None:
            raise err
        return job

    def require(self, *states: Status, ingested: bool = True) -> Job:
        """The record, if this job is this stage's to work on now. The one rule, for every stage:
        a failed or cancelled job raises its own error (nothing left to do: the message is acked or
        terminated, a stream ends with it); a job not yet in one of `states` (or, with `ingested`, whose
        source is not stored yet) raises Transient, so the work is retried with backoff until the job
        catches up or the delivery attempts run out. A stage whose work is already done checks for
        that before calling this (a redelivery finds a completed job)."""
        job = self.live_job()
        if job.status not in states or (ingested and not job.source_key):
            need = "|".join(states) + (" with its source ingested" if ingested else "")
            raise Transient(f"job {self.job_id} is {job.status}; {self.stage} needs it {need}")
        return job

    def update(self, fn: Callable[[Job], Job | None]) -> Job:
        return self.deps.call(self.deps.jobs.update(self.job_id, fn))

    def set(self, *, done: bool = False, **fields: Any) -> Job:
        """Set record attributes (checked: a misspelt name raises). `progress` and `processed_seconds`
        only ever grow, since stages report concurrently. `done` also records this stage's seconds in
        `stage_seconds`."""
        elapsed = round(self.elapsed, 3)

        def merge(job: Job) -> Job:
            for name, value in fields.items():
                if name in GROWING:
                    value = max(getattr(job, name), float(value))
                setattr(job, name, value)
            if done:
                job.stage_seconds = {**job.stage_seconds, self.stage: elapsed}
            return job

        return self.update(merge)

    def event(self, *, status: str = "processing", msg_id: str | None = None, **fields: Any) -> None:
        body = {"stage": self.stage, "status": status, **fields}
        self.deps.call(bus.publish_event(self.deps.js, self.job_id, body, msg_id=msg_id))

    def progress(self, frames_done: int, frames_total: int, processed_s: float | None = None) -> None:
        """Record and announce progress (every ~10 frames) as the job's 0..100 by this stage's share of
        it (record.PROGRESS_PLAN); `processed_s` the seconds of source processed (the segmenter's, for
        billing). Best effort: a NATS hiccup costs one progress report, not the job."""
        extra: dict[str, Any] = {} if processed_s is None else {"processed_seconds": round(processed_s, 3)}
        try:
            overall = progress_of(self.stage, frames_done, frames_total)
            job = self.set(progress=round(min(overall, 99.0), 2), **extra)
            # the record's value, the max over the stages reporting concurrently: it does not go backwards
            total = max(frames_total, frames_done)
            self.event(progress=job.progress, frames_done=frames_done, frames_total=total)
        except Transient as e:
            self.log.warning("progress report lost: %s", e)

    def publish_work(self, subject: str, what: str) -> None:
        self.deps.call(
            bus.publish_work(self.deps.js, subject, {"job_id": self.job_id}, f"{self.job_id}:{what}")
        )

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private temporary directory (under `work_dir` when set), removed afterwards."""
        base = self.deps.settings.work_dir or None
        if base:
            Path(base).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"vbg-{self.stage}-{self.job_id}-", dir=base) as d:
            yield Path(d)


async def connect(settings: StageSettings, name: str) -> Deps:
    """Connect to NATS (streams and KV bucket ensured) and S3 (bucket ensured); Transient if either is down."""
    nc = await bus.connect(
        settings.nats_url, name=name, user=settings.nats_user, password=settings.nats_password
    )
    try:
        js = nc.jetstream()
        await bus.ensure_streams(
            js,
            settings.nats_replicas,
            buckets=(nats_subjects.JOBS_BUCKET,),
            job_retention_s=settings.job_retention_s,
        )
        store = settings.object_store()
        await asyncio.to_thread(store.ensure_bucket)
    except BaseException:
        await nc.close()
        raise
    return Deps(settings, nc, js, JobStore(js), store, asyncio.get_running_loop())
