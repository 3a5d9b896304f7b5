"""An uploaded asset is usable only by its owner: refused at submit (REST and gRPC go through
Gateway.create) and again in ingest against the job record's owner. Before the fix any tenant that
learnt an asset id (a log line, a shared link) could have another tenant's upload processed as its own."""

from __future__ import annotations

import grpc
import pytest

from services.common.objstore import ObjectStore
from services.common.stage_service import Service
from services.ingest.server import IngestSettings, build_server, build_worker
from tests.conftest import media_dir
from tests.integration import gatewaykit, stagekit
from tests.integration.gatewaykit import JSON_CT, gateway, tenant
from vbg.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from videobg import nats_subjects

pytestmark = [pytest.mark.security, pytest.mark.integration]

CLIP = media_dir() / "people" / "androidx_bt601.mov"
SUBMIT = "/v1/video/remove-background"


async def upload(http, headers: dict[str, str]) -> str:
    with open(CLIP, "rb") as f:
        r = await http.post(
            "/v1/uploads", headers=headers, files={"file": ("clip.mov", f, "video/quicktime")}
        )
    assert r.status_code == 201, r.text
    return "asset://" + r.json()["asset_id"]


async def test_cross_tenant_asset_refused_at_submit(nats_url, s3_endpoint, object_store: ObjectStore) -> None:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found")
    settings = gatewaykit.settings_for(nats_url, s3_endpoint, object_store)
    async with gateway(settings) as (gw, http):
        _, alice = await tenant(gw)
        _, mallory = await tenant(gw)
        url = await upload(http, alice)
        body = {"video_url": url, "background_color": "#000000", "output_format": "mp4_h264"}

        r = await http.post(SUBMIT, json=body, headers={**JSON_CT, **mallory})
        assert r.status_code == 404, r.text
        image_body = {"videoUrl": "https://example.com/v.mp4", "imageUrl": url}  # as a background image
        r = await http.post("/v1/proxy/studio-background", json=image_body, headers={**JSON_CT, **mallory})
        assert r.status_code == 404, r.text
        async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
            spec = common_pb2.JobSpec(source=common_pb2.Source(asset_id=url.removeprefix("asset://")),
                                      output_format="webm_vp9")  # fmt: skip
            spec.background.kind = common_pb2.Background.TRANSPARENT
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await jobs_pb2_grpc.JobsStub(channel).Submit(
                    jobs_pb2.SubmitRequest(spec=spec), metadata=(("x-api-key", mallory["X-API-Key"]),)
                )
            assert e.value.code() == grpc.StatusCode.NOT_FOUND

        # the owner may use it
        r = await http.post(SUBMIT, json=body, headers={**JSON_CT, **alice})
        assert r.status_code == 202, r.text


async def test_cross_tenant_asset_refused_in_ingest(
    nats_url, s3_endpoint, object_store, jetstream, uid
) -> None:
    """A record that names another owner's asset (written past the gateway's check) fails in ingest."""
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found")
    from services.common.jobstore import JobStore
    from services.common.record import Job
    from videobg import object_keys

    asset = f"a-{uid}"
    with open(CLIP, "rb") as f:
        object_store.put_stream(object_keys.upload(asset), f, "video/quicktime", metadata={"owner": "alice"})
    settings = stagekit.stage_settings(IngestSettings, nats_url, s3_endpoint, object_store)
    async with jetstream() as (_, js):
        await stagekit.purge_work(js)
        spec = stagekit.spec(source={"asset_id": asset}, owner="mallory")
        stolen, own = f"steal-{uid}", f"own-{uid}"
        await JobStore(js).create(Job(id=stolen, spec=spec, owner="mallory", key_id="k-mallory"))
        alices = spec.model_copy(update={"owner": "alice"})
        await JobStore(js).create(Job(id=own, spec=alices, owner="alice", key_id="k-alice"))
        async with Service(settings, build_server, build_worker, name="ingest"):
            for job_id in (stolen, own):
                await js.publish(nats_subjects.WORK_INGEST, f'{{"job_id":"{job_id}"}}'.encode())
            done = lambda j: j.frames_total > 0 or j.status == "failed"  # noqa: E731
            stolen_job = await stagekit.wait_record(js, stolen, done)
            own_job = await stagekit.wait_record(js, own, done)
        assert stolen_job.status == "failed" and stolen_job.error_code == "not_found", stolen_job
        assert not stolen_job.source_key
        assert own_job.status == "processing", own_job
        await stagekit.purge_work(js)
