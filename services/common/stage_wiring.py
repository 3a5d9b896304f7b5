"""How a stage service is wired to its transports: the gRPC server (health included) and the JetStream
worker whose deliveries run the stage code through `Deps.run_stage` (services/common/jobrun.py).
A stage's server.py declares both:

    build_server = servicer_server(stages_pb2_grpc.add_IngestServicer_to_server, IngestServicer, "Ingest")
    build_worker = queue_worker(WORK_INGEST, CONSUMER_INGEST, "ingest", ingest)   # ingest(run, settings)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from services.common import bus, grpcutil
from services.common.jobrun import Deps, StageRun, fail_job, job_id_of, permanent
from vbg.v1 import stages_pb2
from videobg import metrics
from videobg.errors import DeadlineExceeded, InvalidRequestBody, NotFound, VideoBgError, as_public

log = logging.getLogger(__name__)

BuildServer = Callable[[Any, Deps], tuple[grpc.Server, int]]
BuildWorker = Callable[[Any, Deps], bus.Worker]


class StageServicer:
    """What every stage's gRPC servicer holds (mixed in before the generated servicer base)."""

    def __init__(self, settings: Any, deps: Deps) -> None:
        self.settings = settings
        self.deps = deps


def servicer_server(
    add_to_server: Callable[[Any, grpc.Server], None],
    servicer: Callable[[Any, Deps], object],
    service: str,
) -> BuildServer:
    """A BuildServer serving one `vbg.v1` service (by its name in stages.proto) with `servicer`."""

    def build(settings: Any, deps: Deps) -> tuple[grpc.Server, int]:
        def register(server: grpc.Server) -> list[str]:
            add_to_server(servicer(settings, deps), server)
            return [stages_pb2.DESCRIPTOR.services_by_name[service].full_name]

        return grpc_server(deps, register)

    return build


def queue_worker(subject: str, durable: str, stage: str, work: Callable[[StageRun, Any], Any]) -> BuildWorker:
    """A BuildWorker whose deliveries on `subject` run `work(run, settings)`."""

    def build(settings: Any, deps: Deps) -> bus.Worker:
        return stage_worker(deps, subject, durable, stage, lambda run: work(run, settings))

    return build


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
