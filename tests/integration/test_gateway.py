"""The gateway against a real nats-server and SeaweedFS: REST (Pixelcut dialect) and gRPC `Jobs`.

Each test starts the gateway in-process on ports 0 (REST and gRPC) and stops it on exit. No stage service
runs here: the tests play the stages by moving records and publishing events themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from services.common import bus
from services.common.jobstore import JobStore
from services.common.objstore import ObjectStore
from services.gateway.server import RunningGateway
from services.gateway.settings import GatewaySettings
from tests.integration import gatewaykit
from vbg.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from videobg import nats_subjects, object_keys

pytestmark = pytest.mark.integration

SUBMIT = "/v1/video/remove-background"
VIDEO = "http://127.0.0.1:9/clip.mp4"  # never fetched: no stage runs in these tests


@pytest.fixture
def settings(nats_url: str, s3_endpoint: str, object_store: ObjectStore) -> GatewaySettings:
    return gatewaykit.server_settings(
        nats_url,
        s3_endpoint,
        object_store,
        result_url_ttl_s=120,
        watch_poll_s=0.2,
        auth_required=False,  # these tests are about jobs, not keys: the anonymous owner
    )


gateway = gatewaykit.gateway


@contextlib.asynccontextmanager
async def jobs_stub(gw: RunningGateway) -> AsyncIterator[jobs_pb2_grpc.JobsStub]:
    async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
        yield jobs_pb2_grpc.JobsStub(channel)


async def last_ingest_message(gw: RunningGateway) -> tuple[dict, dict, int]:
    msg = await gw.gateway.js.get_last_msg(nats_subjects.WORK_STREAM, nats_subjects.WORK_INGEST)
    return json.loads(msg.data), dict(msg.headers or {}), msg.seq


# --- REST: submit ---------------------------------------------------------------------------------------


async def test_submit_queues_job_and_work(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, http):
        r = await http.post(SUBMIT, json={"video_url": VIDEO})
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert uuid.UUID(job_id).version == 4
        assert r.headers["location"] == f"/v1/video/remove-background/job/{job_id}"

        record = await gw.gateway.jobs.get(job_id)
        assert record.status == "queued"
        assert record.dialect == "pixelcut" and record.owner == "anonymous"
        spec = record.spec.model_dump(mode="json")
        assert spec["source"] == {"url": VIDEO}
        assert spec["output_format"] == "mp4_h264"
        assert spec["background"]["kind"] == "color" and spec["background"]["rgb"] == [0, 0, 0]

        payload, headers, _ = await last_ingest_message(gw)
        assert payload == {"job_id": job_id}
        assert headers[bus.MSG_ID_HEADER] == f"{job_id}:ingest"

        r = await http.get(r.headers["location"])
        assert r.status_code == 200
        body = r.json()
        assert {k: body[k] for k in ("job_id", "status", "progress")} == {
            "job_id": job_id,
            "status": "queued",
            "progress": 0.0,
        }
        assert body["result_url"] is None and body["error_code"] is None  # present, null


@pytest.mark.parametrize(
    "params, kind, rgb, fmt",
    [
        ({"background_color": "transparent", "output_format": "webm_vp9"}, "transparent", None, "webm_vp9"),
        (
            {"background_color": "transparent", "output_format": "mov_proresks"},
            "transparent",
            None,
            "mov_proresks",
        ),
        ({"background_color": "transparent", "output_format": "gif"}, "transparent", None, "gif"),
        ({"background_color": "#1e90FF", "output_format": "mkv_h265"}, "color", [30, 144, 255], "mkv_h265"),
        ({"background_color": "#abc"}, "color", [170, 187, 204], "mp4_h264"),
    ],
)
async def test_submit_translates_parameters(settings, params, kind, rgb, fmt) -> None:
    async with gateway(settings) as (gw, http):
        r = await http.post(SUBMIT, json={"video_url": VIDEO, **params})
        assert r.status_code == 202, r.text
        spec = (await gw.gateway.jobs.get(r.json()["job_id"])).spec.model_dump(mode="json")
        assert spec["background"]["kind"] == kind
        if rgb is not None:
            assert spec["background"]["rgb"] == rgb
        assert spec["output_format"] == fmt


async def test_submit_multipart_form(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, http):
        form = {"video_url": VIDEO, "background_color": "transparent", "output_format": "webm_vp9"}
        r = await http.post(SUBMIT, files={k: (None, v) for k, v in form.items()})
        assert r.status_code == 202, r.text
        spec = (await gw.gateway.jobs.get(r.json()["job_id"])).spec.model_dump(mode="json")
        assert spec["background"]["kind"] == "transparent" and spec["output_format"] == "webm_vp9"


JSON_CT = {"content-type": "application/json"}

BAD_REQUESTS = [
    # (body bytes, headers, error_code)
    (b"", JSON_CT, "invalid_request_body"),
    (b"   ", JSON_CT, "invalid_request_body"),
    (b"{not json", JSON_CT, "invalid_request_body"),
    (b"[1, 2]", JSON_CT, "invalid_request_body"),
    (b"{}", JSON_CT, "missing_parameter"),
    (b'{"video_url": ""}', JSON_CT, "missing_parameter"),
    (b'{"video_url": null}', JSON_CT, "missing_parameter"),
    (b'{"output_format": "webm_vp9"}', JSON_CT, "missing_parameter"),
    (b'{"video_url": 5}', JSON_CT, "invalid_parameter"),
    (b'{"video_url": "ftp://127.0.0.1/a.mp4"}', JSON_CT, "invalid_parameter"),
    (b'{"video_url": "not a url"}', JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "background_color": "#12345"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "background_color": "#GGG"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "background_color": "red"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "background_color": "#000000\\n"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "background_color": 0}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "output_format": "mp4"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "output_format": "webp"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (b'{"video_url": "%s", "output_format": "MP4_H264"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
    (
        b'{"video_url": "%s", "background_color": "transparent"}' % VIDEO.encode(),
        JSON_CT,
        "invalid_parameter",
    ),
    (
        b'{"video_url": "%s", "background_color": "transparent", "output_format": "mkv_vp9"}'
        % VIDEO.encode(),
        JSON_CT,
        "invalid_parameter",
    ),
    (
        b'{"video_url": "%s", "background_color": "transparent", "output_format": "mov_h265"}'
        % VIDEO.encode(),
        JSON_CT,
        "invalid_parameter",
    ),
    (b'{"video_url": "%s"}' % VIDEO.encode(), {"content-type": "text/plain"}, "unsupported_content_type"),
    (b"video_url=x", {"content-type": "application/x-www-form-urlencoded"}, "unsupported_content_type"),
    (b'{"video_url": "%s"}' % VIDEO.encode(), {}, "unsupported_content_type"),
]


async def test_pixelcut_400s(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, http):
        before = await last_ingest_message(gw) if await _has_ingest(gw) else None
        for body, headers, code in BAD_REQUESTS:
            r = await http.post(SUBMIT, content=body, headers=headers)
            assert r.status_code == 400, (body, r.status_code, r.text)
            got = r.json()
            assert got["error_code"] == code, (body, got)
            assert set(got) == {"error", "error_code"} and got["error"]
        after = await last_ingest_message(gw) if await _has_ingest(gw) else None
        assert (before and before[2]) == (after and after[2]), "a refused request queued work"


async def _has_ingest(gw: RunningGateway) -> bool:
    try:
        await last_ingest_message(gw)
    except Exception:
        return False
    return True


async def test_unknown_job_is_404(settings: GatewaySettings) -> None:
    async with gateway(settings) as (_, http):
        for job_id in (str(uuid.uuid4()), "no.such..job", "x" * 300):
            r = await http.get(f"{SUBMIT}/job/{job_id}")
            assert r.status_code == 404, r.text
            assert r.json()["error_code"] == "not_found"
        r = await http.get(f"/internal/jobs/{uuid.uuid4()}")
        assert r.status_code == 404 and r.json()["error_code"] == "not_found"


# --- REST: status after the stages ----------------------------------------------------------------------


async def test_status_completed_has_presigned_result(
    settings: GatewaySettings, object_store: ObjectStore
) -> None:
    async with gateway(settings) as (gw, http):
        r = await http.post(SUBMIT, json={"video_url": VIDEO, "output_format": "webm_vp9"})
        job_id = r.json()["job_id"]
        store: JobStore = gw.gateway.jobs
        result_key = object_keys.result(job_id, ".webm")
        object_store.put_bytes(result_key, b"result bytes", "video/webm")
        assert await store.transition(job_id, ("queued",), "processing", stage="encode", progress=40.0)
        assert (await http.get(f"{SUBMIT}/job/{job_id}")).json()["status"] == "processing"
        assert await store.transition(
            job_id, ("processing",), "completed", progress=100.0, result_key=result_key
        )

        body = (await http.get(f"{SUBMIT}/job/{job_id}")).json()
        assert body["status"] == "completed" and body["progress"] == 100.0
        assert "X-Amz-Expires=120" in body["result_url"]
        async with httpx.AsyncClient(trust_env=False) as plain:
            download = await plain.get(body["result_url"])
        assert download.status_code == 200 and download.content == b"result bytes"

        record = (await http.get(f"/internal/jobs/{job_id}")).json()
        assert record["status"] == "completed" and record["result_key"] == result_key


async def test_status_failed_and_cancelled(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, http):
        failed = (await http.post(SUBMIT, json={"video_url": VIDEO})).json()["job_id"]
        await gw.gateway.jobs.transition(
            failed,
            ("queued",),
            "failed",
            error_code="malformed_image",
            error="The video could not be decoded",
        )
        body = (await http.get(f"{SUBMIT}/job/{failed}")).json()
        assert body["status"] == "failed"
        assert body["error_code"] == "malformed_image" and body["error"] == "The video could not be decoded"
        assert body["result_url"] is None

        cancelled = (await http.post(SUBMIT, json={"video_url": VIDEO})).json()["job_id"]
        r = await http.post(f"/internal/jobs/{cancelled}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        body = (await http.get(f"{SUBMIT}/job/{cancelled}")).json()
        assert body["status"] == "failed" and body["error_code"] == "cancelled"
        # a finished job cannot be cancelled: the error table says conflict -> 409
        r = await http.post(f"/internal/jobs/{failed}/cancel")
        assert r.status_code == 409 and r.json()["error_code"] == "conflict"


async def test_healthz(settings: GatewaySettings) -> None:
    async with gateway(settings) as (_, http):
        r = await http.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}


# --- gRPC Jobs ------------------------------------------------------------------------------------------


def grpc_spec(**kw) -> common_pb2.JobSpec:
    spec = common_pb2.JobSpec(source=common_pb2.Source(url=VIDEO), output_format="webm_vp9", **kw)
    spec.background.kind = common_pb2.Background.TRANSPARENT
    return spec


async def test_grpc_submit_get_cancel(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, _), jobs_stub(gw) as stub:
        job = await stub.Submit(jobs_pb2.SubmitRequest(spec=grpc_spec(model="light")))
        assert job.status == common_pb2.QUEUED and job.id
        assert job.spec.source.url == VIDEO and job.spec.model == "light" and job.spec.dialect == "grpc"
        payload, headers, _ = await last_ingest_message(gw)
        assert payload == {"job_id": job.id} and headers[bus.MSG_ID_HEADER] == f"{job.id}:ingest"

        got = await stub.Get(jobs_pb2.GetJobRequest(job_id=job.id))
        assert got.id == job.id and got.status == common_pb2.QUEUED and got.created_at
        assert got.weights == ""  # not matted yet
        await gw.gateway.jobs.transition(job.id, ("queued",), "processing", weights="u2netp")
        assert (await stub.Get(jobs_pb2.GetJobRequest(job_id=job.id))).weights == "u2netp"

        cancelled = await stub.Cancel(jobs_pb2.GetJobRequest(job_id=job.id))
        assert cancelled.status == common_pb2.CANCELLED and cancelled.error_code == "cancelled"
        again = await stub.Cancel(jobs_pb2.GetJobRequest(job_id=job.id))  # idempotent
        assert again.status == common_pb2.CANCELLED
        assert (await gw.gateway.jobs.get(job.id)).status == "cancelled"

        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Get(jobs_pb2.GetJobRequest(job_id=str(uuid.uuid4())))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Submit(jobs_pb2.SubmitRequest(spec=common_pb2.JobSpec(output_format="mp4_h264")))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details().startswith("missing_parameter:")

        bad = common_pb2.JobSpec(source=common_pb2.Source(url=VIDEO), output_format="mp4_h264")
        bad.background.kind = common_pb2.Background.TRANSPARENT
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Submit(jobs_pb2.SubmitRequest(spec=bad))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_grpc_idempotency_key(settings: GatewaySettings, uid: str) -> None:
    async with gateway(settings) as (gw, _), jobs_stub(gw) as stub:
        first = await stub.Submit(jobs_pb2.SubmitRequest(spec=grpc_spec(), idempotency_key=uid))
        _, _, seq = await last_ingest_message(gw)
        second = await stub.Submit(jobs_pb2.SubmitRequest(spec=grpc_spec(), idempotency_key=uid))
        assert second.id == first.id
        assert (await last_ingest_message(gw))[2] == seq, "the retried submit queued a second message"
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Submit(jobs_pb2.SubmitRequest(spec=grpc_spec(model="human"), idempotency_key=uid))
        assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_grpc_watch_streams_events_until_the_end(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, _), jobs_stub(gw) as stub:
        job = await stub.Submit(jobs_pb2.SubmitRequest(spec=grpc_spec()))
        js = gw.gateway.js
        seen: list[common_pb2.ProgressEvent] = []

        async def collect() -> None:
            async for ev in stub.Watch(jobs_pb2.GetJobRequest(job_id=job.id)):
                seen.append(ev)

        watcher = asyncio.create_task(collect())
        await bus.publish_event(js, job.id, {"stage": "segment", "status": "processing", "progress": 30.0,
                                             "frames_done": 9, "frames_total": 30})  # fmt: skip
        await asyncio.sleep(0.3)
        assert not watcher.done(), "Watch ended before the job did"
        await bus.publish_event(js, job.id, {"stage": "encode", "status": "processing", "progress": 80.0})
        await bus.publish_event(js, job.id, {"stage": "done", "status": "completed", "progress": 100.0})
        await asyncio.wait_for(watcher, 10)

        assert [e.status for e in seen] == [
            common_pb2.QUEUED, common_pb2.PROCESSING, common_pb2.PROCESSING, common_pb2.COMPLETED,
        ]  # fmt: skip
        assert all(e.job_id == job.id and e.at for e in seen)
        assert (seen[1].stage, seen[1].progress, seen[1].frames_done, seen[1].frames_total) == (
            "segment",
            30.0,
            9,
            30,
        )

        # a late watcher replays the whole history and ends at once
        replay = [e.status async for e in stub.Watch(jobs_pb2.GetJobRequest(job_id=job.id))]
        assert replay[-1] == common_pb2.COMPLETED and len(replay) == 4


async def test_grpc_watch_ends_when_record_ends_without_event(settings: GatewaySettings) -> None:
    async with gateway(settings) as (gw, _), jobs_stub(gw) as stub:
        job = await stub.Submit(jobs_pb2.SubmitRequest(spec=grpc_spec()))
        await gw.gateway.jobs.transition(
            job.id, ("queued",), "failed", error_code="transient_error", error="x"
        )
        events = [e async for e in stub.Watch(jobs_pb2.GetJobRequest(job_id=job.id))]
        assert events[-1].status == common_pb2.FAILED and events[-1].error_code == "transient_error"

        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in stub.Watch(jobs_pb2.GetJobRequest(job_id=str(uuid.uuid4()))):
                pass
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
