"""Issue 11's gateway policies, each against the seed line it answers (docs/CONTRACTS.md): X-Request-Id,
routing errors in the dialect's shape, null fields, studio price, removebgvideo's output-format policy,
implicit idempotency, cancelled vs failed, job listing and DELETE (REST and gRPC)."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from services.common import logs
from services.gateway.server import RunningGateway
from tests.integration.gatewaykit import VIDEO, finish, gateway, ingest_seq, settings_for, tenant
from vbg.v1 import common_pb2, jobs_pb2, jobs_pb2_grpc
from videobg import object_keys

pytestmark = pytest.mark.integration

PIXELCUT = "/v1/video/remove-background"
STUDIO = "/v1/proxy/studio-background"
JOBS = "/v1/jobs"


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store):
    return settings_for(nats_url, s3_endpoint, object_store)


class _Lines(logging.Handler):
    """The JSON lines the gateway would print, captured."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []
        self.addFilter(logs.ContextFilter())
        self.setFormatter(logs.JsonFormatter("gateway"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@contextlib.contextmanager
def captured_logs() -> AsyncIterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


async def test_request_id_on_every_response_in_logs_and_on_the_job(settings) -> None:
    """Seed 004 checklist, Observability: "Confirm request_id/job_id appears in logs"."""
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        with captured_logs() as captured:
            r = await http.post(JOBS, json={"video_url": VIDEO}, headers={**key, "X-Request-Id": "req-42.a"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42.a"
        job_id = r.json()["id"]
        assert (await gw.gateway.jobs.get(job_id)).request_id == "req-42.a"
        queued = [line for line in captured.lines if "queued" in line["msg"] and job_id in line["msg"]]
        assert queued and queued[0]["request_id"] == "req-42.a" and queued[0]["job_id"] == job_id
        access = [line for line in captured.lines if line["logger"] == "services.gateway.access"]
        assert access and access[-1]["msg"].startswith("POST /v1/jobs 200 ")
        assert all(line["request_id"] == "req-42.a" for line in access)
        # none sent, or one that is not a tame token: a new one; errors (401, 404, 405) carry it too
        for resp in (
            await http.get(f"{JOBS}/{job_id}", headers=key),
            await http.get(f"{JOBS}/{job_id}", headers={**key, "X-Request-Id": "bad id\twith spaces"}),
            await http.get(f"{JOBS}/{job_id}", headers={"X-Api-Key": "nope"}),
            await http.get("/v1/nowhere"),
            await http.put(PIXELCUT, headers=key),
        ):
            rid = resp.headers["x-request-id"]
            assert len(rid) == 32 and int(rid, 16) >= 0, resp.headers


async def test_routing_errors_in_the_dialect_shape(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        r = await http.get(f"{PIXELCUT}/jobs/x/y", headers=key)
        assert r.status_code == 404 and set(r.json()) == {"error", "error_code"}
        assert r.json()["error_code"] == "not_found"
        r = await http.put(PIXELCUT, headers=key)
        assert r.status_code == 405 and r.json()["error_code"] == "method_not_allowed"
        assert "POST" in r.headers["allow"]
        r = await http.get(STUDIO, headers=key)  # a POST-only path
        assert r.status_code == 405 and r.json()["status"] == "error"
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = await http.get("/v2/jobs/a/b/c", headers=key)
        assert r.status_code == 404 and r.json() == {"status": "error", "error": r.json()["error"]}
        r = await http.patch(f"{JOBS}/{uuid.uuid4()}", headers=key)
        assert r.status_code == 405 and r.json()["success"] is False
        assert r.json()["error"]["code"] == "method_not_allowed"
        r = await http.get("/api/process", headers=key)
        assert r.status_code == 405 and r.json()["success"] is False
        r = await http.get("/nothing/here")  # no dialect's path: the house shape
        assert r.status_code == 404 and r.json()["error_code"] == "not_found"


async def test_studio_price_and_null_fields(settings) -> None:
    """Seed 000: "Billed per second of source video (trimmed segment ...) | $0.06/second"."""
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        body = {"videoUrl": VIDEO, "start": 2, "end": 32}
        job_id = (await http.post(STUDIO, json=body, headers=key)).json()["job"]["id"]
        job = (await http.get(f"/v2/jobs/{job_id}", headers=key)).json()["job"]
        assert job["billed_seconds"] is None and job["price"] is None
        assert job["result"] is None and job["error"] is None
        await finish(gw, job_id, "completed", billed_seconds=30.0)
        job = (await http.get(f"/v2/jobs/{job_id}", headers=key)).json()["job"]
        assert job["billed_seconds"] == 30.0
        assert job["price"] == {"amount": 1.8, "currency": "USD", "unit": "second", "unit_price": 0.06}


async def test_studio_price_follows_the_price_table(nats_url, s3_endpoint, object_store) -> None:
    settings = settings_for(
        nats_url, s3_endpoint, object_store, price_per_second={"studio-background": 0.1}, price_currency="EUR"
    )
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        job_id = (await http.post(STUDIO, json={"videoUrl": VIDEO}, headers=key)).json()["job"]["id"]
        await finish(gw, job_id, "completed", billed_seconds=12.5)
        price = (await http.get(f"/v2/jobs/{job_id}", headers=key)).json()["job"]["price"]
        assert price["amount"] == 1.25 and price["currency"] == "EUR"


async def test_mp4_with_the_default_background_goes_over_chroma_green(settings) -> None:
    """Seed 002: "Use explicit output format policy for transparent vs non-transparent workflows"."""
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        r = await http.post(JOBS, json={"video_url": VIDEO, "output_format": "mp4"}, headers=key)
        assert r.status_code == 200, r.text
        job_id = r.json()["id"]
        spec = (await gw.gateway.jobs.get(job_id)).spec.model_dump(mode="json")
        assert spec["background"]["kind"] == "color" and spec["background"]["rgb"] == [0, 177, 64]
        assert spec["output_format"] == "mp4_h264"
        bg = (await http.get(f"{JOBS}/{job_id}", headers=key)).json()["background"]
        assert bg["type"] == "color" and bg["color"] == [0, 177, 64] and bg["defaulted"] is True
        assert "alpha" in bg["reason"]
        # mov without a background keeps alpha (ProRes 4444); webm stays transparent
        r = await http.post(JOBS, json={"video_url": VIDEO, "output_format": "mov"}, headers=key)
        assert (await gw.gateway.jobs.get(r.json()["id"])).spec.model_dump(mode="json")[
            "output_format"
        ] == "mov_proresks"
        # an explicit transparent with mp4 is refused, naming the formats that carry alpha
        for explicit in ({"bg_type": "transparent"}, {"background": {"type": "transparent"}}):
            r = await http.post(
                JOBS, json={"video_url": VIDEO, "output_format": "mp4", **explicit}, headers=key
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"
            message = r.json()["error"]["message"]
            assert all(f in message for f in ("webm", "mov", "gif", "webp", "png_sequence"))


async def test_identical_body_within_the_window_is_the_same_job(settings) -> None:
    """Seed 004 checklist: "Retry same request and verify no duplicate side effects"."""
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        before = await ingest_seq(gw)
        body = {"video_url": VIDEO, "bg_type": "green", "output_format": "mp4"}
        first = await http.post(JOBS, json=body, headers=key)
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        again = await http.post(JOBS, content=json.dumps(dict(reversed(body.items()))), headers={
            **key, "content-type": "application/json"})  # fmt: skip
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert await ingest_seq(gw) == before + 1, "the retry queued work again"
        assert (await gw.gateway.ledger.account(owner)).reservations == 1, "the retry reserved again"
        # another body, another key's owner, or an explicit Idempotency-Key: not this job
        other = await http.post(JOBS, json={**body, "bg_type": "blue"}, headers=key)
        assert other.json()["id"] != first.json()["id"]
        _, key2 = await tenant(gw)
        assert (await http.post(JOBS, json=body, headers=key2)).json()["id"] != first.json()["id"]
        _, token = await gw.gateway.keys.create(owner)  # another key of the same owner: another client
        same_owner = await http.post(JOBS, json=body, headers={"X-API-Key": token})
        assert (
            same_owner.json()["id"] != first.json()["id"] and "idempotent-replayed" not in same_owner.headers
        )
        keyed = await http.post(JOBS, json=body, headers={**key, "Idempotency-Key": "k-1"})
        assert keyed.json()["id"] != first.json()["id"]
        keyed2 = await http.post(JOBS, json=body, headers={**key, "Idempotency-Key": "k-1"})
        assert keyed2.json()["id"] == keyed.json()["id"] and keyed2.headers["idempotent-replayed"] == "true"
        # the same holds in the other dialects
        p1 = await http.post(PIXELCUT, json={"video_url": VIDEO}, headers=key)
        p2 = await http.post(PIXELCUT, json={"video_url": VIDEO}, headers=key)
        assert p1.json()["job_id"] == p2.json()["job_id"] and p2.headers["idempotent-replayed"] == "true"
        # a job that failed is not replayed: sending it again is a new attempt
        await finish(gw, p1.json()["job_id"], "failed", error_code="transient_error", error="S3 down")
        p3 = await http.post(PIXELCUT, json={"video_url": VIDEO}, headers=key)
        assert p3.json()["job_id"] != p1.json()["job_id"] and "idempotent-replayed" not in p3.headers


async def test_implicit_idempotency_can_be_turned_off(nats_url, s3_endpoint, object_store) -> None:
    settings = settings_for(nats_url, s3_endpoint, object_store, implicit_idempotency_s=0)
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        a = await http.post(PIXELCUT, json={"video_url": VIDEO}, headers=key)
        b = await http.post(PIXELCUT, json={"video_url": VIDEO}, headers=key)
        assert a.json()["job_id"] != b.json()["job_id"]


async def test_cancelled_is_not_failed_where_the_dialect_has_cancelled(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        rbv = (await http.post(JOBS, json={"video_url": VIDEO}, headers=key)).json()["id"]
        r = await http.delete(f"{JOBS}/{rbv}", headers=key)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert r.json()["error"]["code"] == "cancelled"
        studio = (await http.post(STUDIO, json={"videoUrl": VIDEO}, headers=key)).json()["job"]["id"]
        await gw.gateway.cancel(studio)
        assert (await http.get(f"/v2/jobs/{studio}", headers=key)).json()["job"]["status"] == "cancelled"
        # Pixelcut's statuses have no cancelled: failed with error_code cancelled (documented)
        pix = (await http.post(PIXELCUT, json={"video_url": VIDEO}, headers=key)).json()["job_id"]
        await gw.gateway.cancel(pix)
        body = (await http.get(f"{PIXELCUT}/job/{pix}", headers=key)).json()
        assert body["status"] == "failed" and body["error_code"] == "cancelled"


async def _submit_n(http, key, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = await http.post(JOBS, json={"video_url": f"{VIDEO}?n={i}"}, headers=key)
        ids.append(r.json()["id"])
    return ids


async def test_listing_pages_filters_and_is_private(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        _, other = await tenant(gw)
        ids = await _submit_n(http, key, 5)
        await _submit_n(http, other, 2)
        await finish(gw, ids[1], "completed")
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            r = await http.get(JOBS, params=params, headers=key)
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["success"] is True and len(page["jobs"]) <= 2 and page["limit"] == 2
            seen += [j["id"] for j in page["jobs"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids)) and pages == 3  # newest first, all five, none of the other's
        done = (await http.get(JOBS, params={"status": "completed"}, headers=key)).json()["jobs"]
        assert [j["id"] for j in done] == [ids[1]] and done[0]["status"] == "completed"
        running = (await http.get(JOBS, params={"status": "processing"}, headers=key)).json()["jobs"]
        assert len(running) == 4 and all(j["status"] == "processing" for j in running)
        for bad in ({"limit": "0"}, {"limit": "x"}, {"status": "weird"}, {"cursor": "%%%"}):
            r = await http.get(JOBS, params=bad, headers=key)
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter", bad


async def test_delete_cancels_or_deletes_the_result_owner_checked(settings, object_store) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        _, other = await tenant(gw)
        running, done = await _submit_n(http, key, 2)
        r = await http.delete(f"{JOBS}/{running}", headers=other)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await http.delete(f"{JOBS}/{running}", headers=key)
        assert r.json()["status"] == "cancelled"
        account = await gw.gateway.ledger.account(owner)
        assert account.reservations == 1, "cancel kept the reservation"  # the other job's is left
        result_key = object_keys.result(done, ".webm")
        object_store.put_bytes(result_key, b"result")
        await finish(gw, done, "completed", result_key=result_key)
        assert (await http.get(f"{JOBS}/{done}", headers=key)).json()["output_url"]
        r = await http.delete(f"{JOBS}/{done}", headers=key)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "completed" and body["output_url"] is None and body["result_expired"] is True
        assert not object_store.exists(result_key)
        assert (await http.get(f"{JOBS}/{done}", headers=key)).json()["result_expired"] is True


@contextlib.asynccontextmanager
async def jobs_stub(gw: RunningGateway) -> AsyncIterator[jobs_pb2_grpc.JobsStub]:
    async with grpc.aio.insecure_channel(gw.grpc_target) as channel:
        yield jobs_pb2_grpc.JobsStub(channel)


async def test_grpc_list_is_the_same_listing(settings) -> None:
    async with gateway(settings) as (gw, http), jobs_stub(gw) as stub:
        _, key = await tenant(gw)
        other_owner, other = await tenant(gw)
        md = (("x-api-key", key["X-API-Key"]),)
        ids = await _submit_n(http, key, 3)
        await _submit_n(http, other, 1)
        await finish(gw, ids[0], "failed", error_code="malformed_image", error="bad")
        reply = await stub.List(jobs_pb2.ListJobsRequest(limit=2), metadata=md)
        assert [j.id for j in reply.jobs] == [ids[2], ids[1]] and reply.next_cursor
        rest = await stub.List(jobs_pb2.ListJobsRequest(limit=2, cursor=reply.next_cursor), metadata=md)
        assert [j.id for j in rest.jobs] == [ids[0]] and rest.next_cursor == ""
        failed = await stub.List(jobs_pb2.ListJobsRequest(status=[common_pb2.FAILED]), metadata=md)
        assert [j.id for j in failed.jobs] == [ids[0]] and failed.jobs[0].error_code == "malformed_image"
        rest_page = (await http.get(JOBS, params={"limit": "2"}, headers=key)).json()
        assert rest_page["next_cursor"] == reply.next_cursor  # one cursor format for both
        # a keyed caller naming another owner still gets its own jobs
        mine = await stub.List(jobs_pb2.ListJobsRequest(owner=other_owner), metadata=md)
        assert {j.id for j in mine.jobs} == set(ids)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.List(jobs_pb2.ListJobsRequest(cursor="!!"), metadata=md)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_upload_url_is_an_http_url_every_dialect_takes(settings) -> None:
    """Seed 002: "Upload your background image and get a URL"; seed 000: "Source video (URL or asset ID)"."""
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        _, other = await tenant(gw)
        up = (
            await http.post("/v1/uploads", files={"file": ("clip.mp4", b"video bytes")}, headers=key)
        ).json()
        url, asset_id = up["url"], up["asset_id"]
        assert url.startswith("http://") and url.endswith(f"/v1/uploads/{asset_id}/content")
        assert up["asset_url"] == f"asset://{asset_id}"
        assert (await http.get(url, headers=key)).content == b"video bytes"
        assert (await http.get(url, headers=other)).status_code == 404  # the uploader's only
        r = await http.post(
            JOBS, json={"video_url": url, "bg_type": "image", "bg_image_url": url}, headers=key
        )
        spec = (await gw.gateway.jobs.get(r.json()["id"])).spec.model_dump(mode="json")
        assert spec["source"] == {"asset_id": asset_id} and spec["background"]["image"] == {
            "asset_id": asset_id
        }
        r = await http.post(PIXELCUT, json={"video_url": url}, headers=key)
        assert (await gw.gateway.jobs.get(r.json()["job_id"])).spec.model_dump(mode="json")["source"] == {
            "asset_id": asset_id
        }
        for value in (url, asset_id, f"asset://{asset_id}"):  # studio also takes the bare id
            r = await http.post(STUDIO, json={"videoUrl": value, "imageUrl": asset_id}, headers=key)
            assert r.status_code == 202, r.text
            spec = (await gw.gateway.jobs.get(r.json()["job"]["id"])).spec.model_dump(mode="json")
            assert spec["source"] == {"asset_id": asset_id} and spec["background"]["image"] == {
                "asset_id": asset_id
            }
        # the same path on another host is that host's URL, fetched like any other
        elsewhere = f"https://cdn.example.com/v1/uploads/{asset_id}/content"
        r = await http.post(PIXELCUT, json={"video_url": elsewhere}, headers=key)
        assert (await gw.gateway.jobs.get(r.json()["job_id"])).spec.model_dump(mode="json")["source"] == {
            "url": elsewhere
        }
        # a bare id is studio's alone; elsewhere it is not a URL
        r = await http.post(PIXELCUT, json={"video_url": asset_id}, headers=key)
        assert r.status_code == 400 and r.json()["error_code"] == "invalid_parameter"


async def test_text_prompt_for_pro(settings) -> None:
    """Seed 004: "text_prompt | Used with pro model"."""
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        body = {"video_url": VIDEO, "model": "pro", "text_prompt": "the dancer in the center"}
        r = await http.post(JOBS, json=body, headers=key)
        assert r.status_code == 200, r.text
        assert (await gw.gateway.jobs.get(r.json()["id"])).spec.text_prompt == "the dancer in the center"
        r = await http.post(JOBS, json={**body, "text_prompt": "the red car"}, headers=key)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"
        message = r.json()["error"]["message"]
        assert "'red', 'car' not understood" in message and "position: center" in message
        r = await http.post(JOBS, json={**body, "model": "human"}, headers=key)
        assert r.status_code == 400 and "used with the pro model" in r.json()["error"]["message"]


async def test_grpc_submit_takes_and_answers_the_request_id(settings) -> None:
    async with gateway(settings) as (gw, http), jobs_stub(gw) as stub:
        _, key = await tenant(gw)
        spec = common_pb2.JobSpec(source=common_pb2.Source(url=VIDEO), output_format="mp4_h264")
        md = (("x-api-key", key["X-API-Key"]), ("x-request-id", "grpc-req-7"))
        call = stub.Submit(jobs_pb2.SubmitRequest(spec=spec), metadata=md)
        job = await call
        assert dict(await call.initial_metadata())["x-request-id"] == "grpc-req-7"
        assert job.request_id == "grpc-req-7"
        assert (await gw.gateway.jobs.get(job.id)).request_id == "grpc-req-7"
        got = await stub.Get(jobs_pb2.GetJobRequest(job_id=job.id), metadata=md[:1])
        assert got.request_id == "grpc-req-7"


async def test_grpc_submit_checks_the_prompt_at_submit(settings) -> None:
    async with gateway(settings) as (gw, _), jobs_stub(gw) as stub:
        _, key = await tenant(gw)
        md = (("x-api-key", key["X-API-Key"]),)
        for model, prompt in (("light", "everyone"), ("pro", "the red car")):
            spec = common_pb2.JobSpec(
                source=common_pb2.Source(url=VIDEO), output_format="mp4_h264", model=model, text_prompt=prompt
            )
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.Submit(jobs_pb2.SubmitRequest(spec=spec), metadata=md)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "text_prompt" in e.value.details()
        spec = common_pb2.JobSpec(
            source=common_pb2.Source(url=VIDEO), output_format="mp4_h264", model="pro", text_prompt="everyone"
        )
        assert (
            await stub.Submit(jobs_pb2.SubmitRequest(spec=spec), metadata=md)
        ).spec.text_prompt == "everyone"
