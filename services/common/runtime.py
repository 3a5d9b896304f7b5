"""The process runtime every stage service shares: settings -> NATS + S3 -> gRPC server (+ JetStream
worker) -> on SIGTERM, drain -> exit.

    raise SystemExit(main(IngestSettings(), build_server, build_worker, name="ingest"))   # a __main__

Stage code is synchronous (decoding, inference and encoding block) and runs in threads: the NATS worker
hands each delivery to a thread, the gRPC server's handlers run in its thread pool. It reaches the asyncio
side, where the NATS client lives (job records, events, work publishes), through `Deps.call`. A worker
delivery and a gRPC call of the same stage go through the same `Deps.run_stage`, so both behave alike.

Failures, by `videobg.errors.ERROR_TABLE`:
    permanent (TERM/ACK codes)  the job is marked failed with the code and a `failed` event goes out; the
                                worker then terminates the message, an RPC returns the mapped status
    retryable (NAK codes, bugs) the message is nak'ed with backoff; after `max_deliver` attempts the
                                worker's give-up hook fails the job with transient_error
    job already failed/cancelled the message is acked: there is nothing left to do for it
Every stage of one job has `stage_deadline_s`; past it the stage raises Transient (a slow or stuck
neighbour is retried, not blamed on the input).

Shutdown (SIGTERM/SIGINT): health turns NOT_SERVING, the worker stops fetching and the job in hand gets
`drain_grace_s` to finish. After that `Deps.shutdown` is set: stage code checks it between frames and
raises Transient, so the message is nak'ed (handed back to a replica) instead of failing the job. Then the
gRPC server stops (in-flight streams get the rest of the grace) and the NATS connection drains.

Metrics (`videobg.metrics`): every stage run is timed (`StageRun.measured`), frames are counted by the stage
code (`StageRun.count_frames`), redeliveries by the worker, readiness by `Service`; with `metrics_port` set
the process serves /metrics, and a worker refreshes the JetStream queue gauges (`services/common/metrics.py`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1.health import HealthServicer
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from services.common import bus, grpcutil, logs
from services.common import metrics as service_metrics
from services.common.jobstore import JobStore
from services.common.objstore import ObjectStore
from services.common.record import FAILABLE, Job, Status, progress_of
from services.common.settings import ServiceSettings
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

WARMUP_JOIN_S = 2.0  # at exit, how long a still-running warm-up (a model load) is waited for

T = TypeVar("T")
# record fields that only grow: stages report them concurrently, and a redelivery starts again from 0.
# processed_seconds is the span of source matted so far, what a cancelled job is billed for.
GROWING = frozenset({"progress", "processed_seconds"})


class StageSettings(ServiceSettings):
    """Base of the stage services' settings. Each subclass sets its own env prefix (VBG_INGEST_, ...); a
    field not set under that prefix falls back to the shared VBG_ one (VBG_NATS_URL, VBG_S3_ENDPOINT...),
    so a deployment names its infrastructure once."""

    backoff_s: tuple[float, ...] = (5.0, 30.0, 120.0)  # delays between retries of a failed attempt
    drain_grace_s: float = 25.0  # after SIGTERM: how long the job in hand may run before it is handed back
    grpc_workers: int = 8  # threads serving gRPC calls (each stage call runs in one)
    concurrency: int = 1  # work messages handled at once by this process's worker
    queue_metrics_s: float = 5.0  # how often a worker refreshes the JetStream queue gauges (0: never)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared = EnvSettingsSource(settings_cls, env_prefix="VBG_")
        return init_settings, env_settings, shared, dotenv_settings, file_secret_settings


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


# --- wiring: connect, gRPC server, NATS worker --------------------------------------------------------


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


def grpc_server(deps: Deps, register: Callable[[grpc.Server], Iterable[str]]) -> tuple[grpc.Server, int]:
    """grpcutil.build_server on the settings' address (health included); remembers the health servicer
    so shutdown can turn it NOT_SERVING first."""
    s = deps.settings
    server, port, health = grpcutil.build_server(s.grpc_host, s.grpc_port, register, workers=s.grpc_workers)
    deps.health = health
    return server, port


def stage_worker(
    deps: Deps, subject: str, durable: str, stage: str, fn: Callable[[StageRun], Any]
) -> bus.Worker:
    """A JetStream worker whose deliveries run `fn` through `Deps.run_stage` in a thread."""

    async def handle(d: bus.Delivery) -> None:
        if d.redelivered:
            metrics.REDELIVERIES.labels(stage=stage).inc()
        job_id = job_id_of(d.payload)
        try:
            await asyncio.to_thread(deps.run_stage, stage, job_id, fn)
        except Exception as exc:
            if not permanent(exc) and await _finished(deps, job_id):
                log.info("job %s: %s stopped (%s); the job is finished, message acked", job_id, stage, exc)
                return
            raise

    async def give_up(d: bus.Delivery, exc: BaseException) -> None:
        try:
            job_id = job_id_of(d.payload)
        except InvalidRequestBody:
            return
        err = as_public(exc)
        if permanent(err):
            code, message = err.code, err.message
        else:
            # a deadline keeps its own code: the job is then charged for the span it had processed
            code = err.code if isinstance(err, DeadlineExceeded) else "transient_error"
            message = f"{stage} failed {d.num_delivered} times; last error: {err.message}"
        await fail_job(deps, job_id, stage, code, message)

    s = deps.settings
    return bus.Worker(
        deps.js, subject, durable, handle,
        ack_wait=s.ack_wait_s, max_deliver=s.max_deliver, backoff=s.backoff_s, on_give_up=give_up,
        concurrency=s.concurrency,
    )  # fmt: skip


async def _finished(deps: Deps, job_id: str) -> bool:
    try:
        job = await deps.jobs.get(job_id)
    except NotFound:
        return True
    except VideoBgError:
        return False
    return job.terminal


# --- the process --------------------------------------------------------------------------------------

BuildServer = Callable[[Any, Deps], tuple[grpc.Server, int]]
BuildWorker = Callable[[Any, Deps], bus.Worker]


class Service:
    """One stage service: gRPC server plus (optionally) its JetStream worker, on one NATS connection.

    `async with Service(settings, build_server, build_worker, name=...) as svc:` runs it in-process
    (tests); `main` runs it as a process with signal handling.
    """

    def __init__(
        self,
        settings: StageSettings,
        build_server: BuildServer,
        build_worker: BuildWorker | None = None,
        *,
        name: str,
        warmup: Callable[[Any, Deps], None] | None = None,
    ):
        self.settings = settings
        self.name = name
        self._build_server = build_server
        self._build_worker = build_worker
        self._warmup = warmup
        self.deps: Deps | None = None
        self.server: grpc.Server | None = None
        self.port = 0
        self.worker: bus.Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.stage = service_metrics.stage_of(name)
        self.metrics: service_metrics.MetricsServer | None = None
        self.queue_monitor: service_metrics.QueueMonitor | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._ready = False
        self.warmup_thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"{self.settings.grpc_host}:{self.port}"

    async def start(self) -> None:
        metrics.init_stage(self.stage)
        self.metrics = service_metrics.start_server(self.settings)
        try:
            self.deps = deps = await connect(self.settings, self.name)
        except BaseException:
            self._stop_metrics()
            raise
        try:
            self.server, self.port = self._build_server(self.settings, deps)
            self.server.start()
            if self._build_worker is not None:
                self.worker = self._build_worker(self.settings, deps)
                await self.worker.start()
                self._worker_task = asyncio.create_task(self.worker.run(), name=f"{self.name}-worker")
                if self.settings.queue_metrics_s > 0:
                    self.queue_monitor = service_metrics.QueueMonitor(
                        deps.js, interval_s=self.settings.queue_metrics_s
                    )
                    self._monitor_task = self.queue_monitor.start()
        except BaseException:
            await service_metrics.stop_task(self._monitor_task)
            if self.server is not None:
                self.server.stop(None)
            await deps.close()
            self._stop_metrics()
            raise
        self._set_ready(True)
        if self._warmup is not None:
            # a daemon thread, not the loop's executor: a SIGTERM during a slow warm-up (a cold model
            # load) must not wait for it at exit, since asyncio.run joins its executor's threads
            self.warmup_thread = threading.Thread(
                target=self._run_warmup, args=(deps,), name=f"{self.name}-warmup", daemon=True
            )
            self.warmup_thread.start()
        log.info(
            "%s serving gRPC on %s (worker: %s)",
            self.name,
            self.target,
            self.worker.durable if self.worker else "none",
        )

    def _run_warmup(self, deps: Deps) -> None:
        assert self._warmup is not None
        try:
            self._warmup(self.settings, deps)
        except Exception:  # a job that needs what failed reports it; the service still serves
            log.exception("%s: warm-up failed", self.name)

    def _set_ready(self, ready: bool) -> None:
        if ready != self._ready:
            self._ready = ready
            metrics.WORKER_READY.labels(stage=self.stage).inc(1 if ready else -1)

    def _stop_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None

    def request_stop(self) -> None:
        """Begin a graceful stop (signal-handler safe)."""
        if not self._stop.is_set():
            log.info("%s: stop requested; draining", self.name)
        self._stop.set()
        self._set_ready(False)
        if self.worker is not None:
            self.worker.stop()

    async def wait(self) -> bool:
        """Until a stop is requested (True) or the worker loop died (False)."""
        waiter = asyncio.create_task(self._stop.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if self._worker_task is not None:
            tasks.add(self._worker_task)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        task = self._worker_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s: worker loop died: %r", self.name, exc, exc_info=exc)
        return self._stop.is_set()

    async def stop(self) -> None:
        """Drain: NOT_SERVING, finish (or after drain_grace_s hand back) the job in hand, stop gRPC, close NATS."""
        deps = self.deps
        if deps is None:
            return
        self.request_stop()
        if deps.health is not None:
            deps.health.enter_graceful_shutdown()
        t_end = time.monotonic() + self.settings.drain_grace_s
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._worker_task), self.settings.drain_grace_s)
            except TimeoutError:
                log.warning(
                    "%s: job still running after %.0f s; handing it back",
                    self.name,
                    self.settings.drain_grace_s,
                )
                deps.shutdown.set()
                try:
                    await asyncio.wait_for(self._worker_task, 30.0)
                except TimeoutError:
                    log.error(
                        "%s: worker did not stop; abandoning its message (redelivered after ack_wait)",
                        self.name,
                    )
            except Exception:
                log.exception("%s: worker loop failed", self.name)
        if self.server is not None:
            grace = max(1.0, t_end - time.monotonic())
            stopped = self.server.stop(grace)
            # in-flight streams get the grace; then stage code sees the shutdown and ends them
            await asyncio.to_thread(stopped.wait, grace)
            deps.shutdown.set()
            await asyncio.to_thread(stopped.wait, 5.0)
        deps.shutdown.set()
        await service_metrics.stop_task(self._monitor_task)
        self._monitor_task = None
        await deps.close()
        self.deps = None
        self._stop_metrics()
        log.info("%s stopped", self.name)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(service: Service) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    await service.start()
    clean = await service.wait()
    if not clean:
        log.error("%s: worker loop ended unexpectedly; shutting down", service.name)
    await service.stop()
    return 0 if clean else 1


def setup_logging(level: str, service: str = "videobg", fmt: str = "json") -> None:
    logs.setup_logging(level, service, fmt)


def main(
    settings: StageSettings,
    build_server: BuildServer,
    build_worker: BuildWorker | None = None,
    *,
    name: str,
    warmup: Callable[[Any, Deps], None] | None = None,
) -> int:
    """Run one stage service until SIGTERM/SIGINT. Exit 0 after a clean drain, 1 if NATS or S3 could not
    be reached at start or the worker loop died."""
    setup_logging(settings.log_level, name, settings.log_format)
    service = Service(settings, build_server, build_worker, name=name, warmup=warmup)
    try:
        code = asyncio.run(serve(service))
    except Transient as e:
        log.error("%s: cannot start: %s", name, e)
        code = 1
    thread = service.warmup_thread
    if thread is not None:
        thread.join(WARMUP_JOIN_S)
        if thread.is_alive():
            # the drain is done; a warm-up still inside torch's native code would abort the interpreter's
            # exit ("terminate called without an active exception", SIGABRT), so leave without it
            log.warning("%s: warm-up still running at exit; leaving without it", name)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code
