"""gRPC `Jobs` takes the same API keys as REST, bills like REST, and keeps tenants apart
(services/gateway/grpc_api.py). Before the fix every gRPC caller was trusted: no key was asked for, the
owner came from the request, nothing was reserved, and any job id could be read or cancelled."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from services.common.objstore import ObjectStore
from services.gateway.server import RunningGateway
from tests.integration import gatewaykit
from tests.integration.gatewaykit import VIDEO, gateway, tenant
from vbg.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc

pytestmark = [pytest.mark.security, pytest.mark.integration]


@pytest.fixture
def settings(nats_url: str, s3_endpoint: str, object_store: ObjectStore):
    return gatewaykit.settings_for(nats_url, s3_endpoint, object_store)


@contextlib.asynccontextmanager
async def stub(gw: RunningGateway) -> AsyncIterator[jobs_pb2_grpc.JobsStub]:
    async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
        yield jobs_pb2_grpc.JobsStub(channel)


def spec(**kw) -> common_pb2.JobSpec:
    out = common_pb2.JobSpec(
        source=common_pb2.Source(url=VIDEO), output_format="webm_vp9", model="light", **kw
    )
    out.background.kind = common_pb2.Background.TRANSPARENT
    return out


def meta(headers: dict[str, str], bearer: bool = False) -> tuple[tuple[str, str], ...]:
    key = headers["X-API-Key"]
    return (("authorization", f"Bearer {key}"),) if bearer else (("x-api-key", key),)


async def status_of(call) -> grpc.StatusCode:
    try:
        result = call()
        if hasattr(result, "__aiter__"):
            async for _ in result:
                pass
        else:
            await result
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


async def test_grpc_without_a_valid_key_is_refused(settings) -> None:
    async with gateway(settings) as (gw, _), stub(gw) as s:
        owner, headers = await tenant(gw)
        job = await s.Submit(jobs_pb2.SubmitRequest(spec=spec()), metadata=meta(headers))
        get = jobs_pb2.GetJobRequest(job_id=job.id)
        bad_keys: list[tuple[tuple[str, str], ...] | None] = [
            None,
            (("x-api-key", "vbg_000000000000_forged"),),
            (("authorization", "Bearer not-a-key"),),
        ]
        for md in bad_keys:
            assert await status_of(
                lambda md=md: s.Submit(jobs_pb2.SubmitRequest(spec=spec()), metadata=md)
            ) == (grpc.StatusCode.UNAUTHENTICATED)
            for rpc in (s.Get, s.Cancel, s.Watch):
                assert (
                    await status_of(lambda rpc=rpc, md=md: rpc(get, metadata=md))
                    == grpc.StatusCode.UNAUTHENTICATED
                )
        assert (await gw.gateway.jobs.get(job.id)).status == "queued", "an unauthenticated Cancel took effect"
        # the owner's own key works, in either spelling
        got = await s.Get(get, metadata=meta(headers, bearer=True))
        assert got.id == job.id and got.spec.owner == owner


async def test_grpc_cross_tenant_and_billing(settings) -> None:
    async with gateway(settings) as (gw, _), stub(gw) as s:
        alice, alice_headers = await tenant(gw)
        mallory, mallory_headers = await tenant(gw)
        job = await s.Submit(jobs_pb2.SubmitRequest(spec=spec()), metadata=meta(alice_headers))
        record = await gw.gateway.jobs.get(job.id)
        assert record.owner == alice and record.key_id
        # billed like REST: light is 45 credits/min, 60 s reserved for a job of unknown length
        assert (await gw.gateway.ledger.account(alice)).view()["reserved"] == pytest.approx(45.0)

        # another tenant sees nothing of it, and cannot cancel it
        get = jobs_pb2.GetJobRequest(job_id=job.id)
        for rpc in (s.Get, s.Cancel, s.Watch):
            assert await status_of(lambda rpc=rpc: rpc(get, metadata=meta(mallory_headers))) == (
                grpc.StatusCode.NOT_FOUND
            )
        assert (await gw.gateway.jobs.get(job.id)).status == "queued"
        listed = await s.List(jobs_pb2.ListJobsRequest(owner=alice), metadata=meta(mallory_headers))
        assert job.id not in [j.id for j in listed.jobs], "List named another owner and got their jobs"
        listed = await s.List(jobs_pb2.ListJobsRequest(), metadata=meta(alice_headers))
        assert [j.id for j in listed.jobs] == [job.id]

        # the owner comes from the key, never from the request: naming alice bills mallory
        forged = await s.Submit(
            jobs_pb2.SubmitRequest(spec=spec(owner=alice)), metadata=meta(mallory_headers)
        )
        assert (await gw.gateway.jobs.get(forged.id)).owner == mallory
        assert (await gw.gateway.ledger.account(alice)).view()["reserved"] == pytest.approx(45.0)
        assert (await gw.gateway.ledger.account(mallory)).view()["reserved"] == pytest.approx(45.0)

        # no credits, no job
        _, broke = await tenant(gw, credits=0.0)
        code = await status_of(lambda: s.Submit(jobs_pb2.SubmitRequest(spec=spec()), metadata=meta(broke)))
        assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_grpc_anonymous_listener_only_by_explicit_setting(settings) -> None:
    async with gateway(settings.model_copy(update={"grpc_allow_anonymous": True})) as (gw, _), stub(gw) as s:
        job = await s.Submit(jobs_pb2.SubmitRequest(spec=spec()))  # no key: a trusted internal caller
        assert (await gw.gateway.jobs.get(job.id)).owner == "anonymous"
        assert (await s.Get(jobs_pb2.GetJobRequest(job_id=job.id))).id == job.id
        missing = jobs_pb2.GetJobRequest(job_id=str(uuid.uuid4()))
        assert await status_of(lambda: s.Get(missing)) == grpc.StatusCode.NOT_FOUND
