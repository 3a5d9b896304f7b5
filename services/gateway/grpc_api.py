"""The gRPC `vbg.v1.Jobs` API: the same Gateway calls as REST, with proto in and out (asyncio server, in
the gateway's one event loop). Typed errors leave as the gRPC status `videobg.errors.ERROR_TABLE` names.

Callers authenticate as on REST: the API key in metadata `x-api-key`, or `authorization: Bearer <key>`,
checked by the same `ApiKeyAuth` (key store, per-key rate limit). The job's owner is the key's owner,
whatever `JobSpec.owner` says; a keyed Submit reserves and is charged credits like a REST submit; another
owner's job answers NOT_FOUND. Without a key a call is refused UNAUTHENTICATED when keys are required,
unless the operator set `grpc_allow_anonymous` (a listener that only trusted callers can reach: those calls
are the anonymous owner, unmetered, and see every job; see docs/SECURITY.md)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import logs
from services.common.grpcutil import CHANNEL_OPTIONS, status_for
from services.common.protoconv import info_to_proto, spec_from_proto, spec_to_proto
from services.common.record import Job
from services.gateway.auth import ApiKeyAuth
from services.gateway.caller import Caller
from services.gateway.jobs import Gateway
from vbg.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from videobg.errors import InvalidInput, VideoBgError

log = logging.getLogger(__name__)

STATUS: dict[str, common_pb2.JobStatus] = {
    "draft": common_pb2.DRAFT,
    "queued": common_pb2.QUEUED,
    "processing": common_pb2.PROCESSING,
    "completed": common_pb2.COMPLETED,
    "failed": common_pb2.FAILED,
    "cancelled": common_pb2.CANCELLED,
}


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    if not isinstance(exc, VideoBgError):
        log.exception("unexpected error in a Jobs handler")
    code, details = status_for(exc)
    await context.abort(code, details)


def mapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Async unary or server-streaming handler: typed errors -> gRPC status (grpcutil.mapped, for aio)."""
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in fn(self, request, context):
                    yield item
            except Exception as exc:  # noqa: BLE001
                await _abort(context, exc)

        return stream

    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except Exception as exc:  # noqa: BLE001
            await _abort(context, exc)

    return unary


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def job_to_proto(job: Job, result_url: str | None = None) -> common_pb2.Job:
    out = common_pb2.Job(
        id=job.id,
        spec=spec_to_proto(job.spec),
        status=STATUS[job.status],
        progress=job.progress,
        stage=job.stage,
        error_code=job.error_code,
        error=job.error,
        result_key=job.result_key,
        result_url=result_url or "",
        credits=job.credits,
        source_seconds=job.billed_seconds or 0.0,
        stage_seconds=job.stage_seconds,
        created_at=job.created,
        updated_at=job.updated,
        request_id=job.request_id,
        weights=job.weights,
    )
    if job.info is not None:
        out.info.CopyFrom(info_to_proto(job.info))
    return out


def event_to_proto(event: dict[str, Any]) -> common_pb2.ProgressEvent:
    at = event.get("at") or ""
    if not at and isinstance(event.get("ts"), int | float):
        at = datetime.fromtimestamp(event["ts"], UTC).isoformat().replace("+00:00", "Z")
    return common_pb2.ProgressEvent(
        job_id=str(event.get("job_id") or ""),
        stage=str(event.get("stage") or ""),
        status=STATUS.get(event.get("status", ""), common_pb2.JOB_STATUS_UNSPECIFIED),
        progress=_number(event.get("progress")),
        frames_done=int(_number(event.get("frames_done", event.get("frames")))),
        frames_total=int(_number(event.get("frames_total", event.get("total")))),
        error_code=str(event.get("error_code") or ""),
        message=str(event.get("message") or event.get("error") or ""),
        at=str(at),
    )


def presented_key(context: grpc.aio.ServicerContext) -> str:
    """The API key in the call's metadata (keys arrive lower-cased): `x-api-key`, else a Bearer token."""
    metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    key = metadata.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, credentials = metadata.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


class JobsServicer(jobs_pb2_grpc.JobsServicer):
    def __init__(self, gateway: Gateway, auth: ApiKeyAuth, *, allow_anonymous: bool = False):
        self.gw = gateway
        self.auth = auth
        self.allow_anonymous = allow_anonymous

    async def caller(self, context: grpc.aio.ServicerContext) -> Caller:
        return await self.auth.authenticate(
            presented_key(context), anonymous_allowed=self.allow_anonymous, peer=peer_address(context)
        )

    @mapped
    async def Submit(
        self, request: jobs_pb2.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Job:
        caller = await self.caller(context)
        spec = spec_from_proto(request.spec)
        spec.owner = caller.owner  # from the key, never from the request
        sent = dict(context.invocation_metadata() or ()).get("x-request-id")
        rid = logs.request_id_from(sent if isinstance(sent, str) else None)
        with logs.bound(request_id=rid):  # logged and stored on the job, as for REST
            submitted = await self.gw.create(spec, caller=caller, idempotency_key=request.idempotency_key)
        await context.send_initial_metadata((("x-request-id", rid),))
        return job_to_proto(submitted.job)

    @mapped
    async def Get(self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> common_pb2.Job:
        job = await self.gw.get(request.job_id, await self.caller(context))
        return job_to_proto(job, self.gw.result_url(job))

    @mapped
    async def Watch(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.ProgressEvent]:
        async for event in self.gw.watch(request.job_id, await self.caller(context)):
            yield event_to_proto(event)

    @mapped
    async def Cancel(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.Job:
        job = await self.gw.cancel(request.job_id, await self.caller(context))
        return job_to_proto(job)

    @mapped
    async def List(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsReply:
        """The same page as REST GET /v1/jobs: the key's owner's jobs. `owner` may scope the page only for
        a trusted caller without a key (the anonymous owner, which sees every job); a keyed caller naming
        another owner gets its own jobs, never theirs."""
        if not 0 <= request.limit <= 100:
            raise InvalidInput("limit must be 1..100 (0: 20)")
        caller = await self.caller(context)
        if request.owner and caller.anonymous:
            caller = Caller(owner=request.owner, key_id="grpc")
        names = {v: k for k, v in STATUS.items()}
        statuses = tuple(names[s] for s in request.status if s in names)
        jobs, next_cursor = await self.gw.list_jobs(
            caller, limit=request.limit or 20, cursor=request.cursor, statuses=statuses
        )
        return jobs_pb2.ListJobsReply(
            jobs=[job_to_proto(job, self.gw.result_url(job)) for job in jobs], next_cursor=next_cursor or ""
        )


async def start_grpc(gateway: Gateway, auth: ApiKeyAuth, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    servicer = JobsServicer(gateway, auth, allow_anonymous=gateway.settings.grpc_allow_anonymous)
    jobs_pb2_grpc.add_JobsServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"could not bind gRPC on {host}:{port}")
    await server.start()
    for name in ("vbg.v1.Jobs", ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The client's address from gRPC's peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678")."""
    kind, _, rest = (context.peer() or "").partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest
