"""The removebgvideo contract (seeds 001, 002, 004) with keys required: the guides' and the reference's
example payloads, field translation, draft then start, the legacy /api/process, status polling with the
job record fields the checklists ask for, and the error shape {"success": false, "error": {...}}."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.common.record import TrimSpec
from tests.integration import gatewaykit
from tests.integration.gatewaykit import JSON_CT, VIDEO, finish, gateway, ingest_seq, settings_for, tenant
from videobg import object_keys

pytestmark = pytest.mark.integration

JOBS = "/v1/jobs"
GUIDE_EXAMPLE = {  # seed 001, "Core payload design"
    "video_url": "https://cdn.example.com/input.mp4",
    "output_format": "webm",
    "bg_type": "transparent",
    "model": "original",
}
CURL_EXAMPLE = {  # seed 004, the curl example
    "video_url": "https://cdn.example.com/input.mp4",
    "model": "original",
    "background": {"type": "transparent"},
    "output_format": "webm",
    "auto_start": True,
}


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store):
    return settings_for(nats_url, s3_endpoint, object_store)


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"success", "error"} and body["success"] is False, body
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"], body
    assert body["error"]["code"] == code, body


def assert_created(r: httpx.Response, status: str) -> str:
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"success", "id", "status", "message"}, body
    assert body["success"] is True and body["status"] == status and body["message"]
    assert uuid.UUID(body["id"])
    return body["id"]


@pytest.mark.parametrize("path", [JOBS, "/api/process"])
async def test_seed_examples(settings, path) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        for example in (GUIDE_EXAMPLE, CURL_EXAMPLE, {"video_url": VIDEO}):  # the last: every default
            before = await ingest_seq(gw)
            job_id = assert_created(await http.post(path, json=example, headers=key), "processing")
            assert await ingest_seq(gw) > before
            record = await gw.gateway.jobs.get(job_id)
            assert record.dialect == "removebgvideo"
            assert record.model == "original" and record.spec.model == "original"
            assert record.spec.output_format == "webm_vp9"
            assert record.spec.background.kind == "transparent"

            r = await http.get(f"{JOBS}/{job_id}", headers=key)
            assert r.status_code == 200
            body = r.json()
            assert body["success"] is True and body["id"] == job_id
            assert body["status"] == "processing" and body["progress"] == 0.0
            assert body["input"] == {"video_url": example["video_url"], "start": 0.0, "end": None}
            assert body["model"] == "original" and body["output_format"] == "webm"
            assert body["background"] == {"type": "transparent"}
            assert body["credits"] == {"reserved": 60.0, "charged": 0.0}  # 60 s at 60 credits/min
            assert body["output_url"] is None and body["error"] is None  # present, null (CONTRACTS.md)


@pytest.mark.parametrize(
    "params, kind, rgb, image, fmt",
    [
        ({"bg_type": "green", "output_format": "mp4"}, "color", [0, 255, 0], None, "mp4_h264"),
        ({"bg_type": "white", "output_format": "mov"}, "white", None, None, "mov_h265"),
        ({"bg_type": "black", "output_format": "gif"}, "color", [0, 0, 0], None, "gif"),
        ({"bg_type": "blue", "output_format": "webm"}, "color", [0, 0, 255], None, "webm_vp9"),
        ({"output_format": "mov"}, "transparent", None, None, "mov_proresks"),
        ({"output_format": "webp"}, "transparent", None, None, "webp"),
        ({"output_format": "png_sequence"}, "transparent", None, None, "png_sequence"),
        (
            {"bg_type": "custom", "bg_color": [0, 177, 64], "output_format": "mp4"},
            "color",
            [0, 177, 64],
            None,
            "mp4_h264",
        ),
        ({"bg_type": "color", "bg_color": "#FF5733"}, "color", [255, 87, 51], None, "webm_vp9"),
        ({"background": {"type": "color", "color": [1, 2, 3]}}, "color", [1, 2, 3], None, "webm_vp9"),
        (
            {"bg_type": "green", "bg_color": [9, 9, 9]},
            "color",
            [0, 255, 0],
            None,
            "webm_vp9",
        ),  # bg_color unused
        (
            {"bg_type": "image", "bg_image_url": "https://cdn.example.com/bg.jpg", "output_format": "mp4"},
            "image",
            None,
            {"url": "https://cdn.example.com/bg.jpg"},
            "mp4_h264",
        ),
        (
            {"background": {"type": "image", "image_url": "https://cdn.example.com/bg.png"}},
            "image",
            None,
            {"url": "https://cdn.example.com/bg.png"},
            "webm_vp9",
        ),
        (
            {"bg_type": "transparent", "background": {"type": "transparent"}},
            "transparent",
            None,
            None,
            "webm_vp9",
        ),
        (
            {"bg_type": "image", "bg_image_url": "asset://bg-9"},
            "image",
            None,
            {"asset_id": "bg-9"},
            "webm_vp9",
        ),
    ],
)
async def test_translation(settings, params, kind, rgb, image, fmt) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        if image and image.get(
            "asset_id"
        ):  # an upload of this tenant's: another's would be refused (tests/security)
            gatewaykit.own_asset(gw, owner, image["asset_id"])
        job_id = assert_created(
            await http.post(JOBS, json={"video_url": VIDEO, **params}, headers=key), "processing"
        )
        spec = (await gw.gateway.jobs.get(job_id)).spec.model_dump(mode="json")
        assert spec["background"]["kind"] == kind
        if rgb is not None:
            assert spec["background"]["rgb"] == rgb
        assert spec["background"]["image"] == image
        assert spec["output_format"] == fmt


async def test_multipart_form(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        form = {
            "video_url": VIDEO,
            "bg_type": "custom",
            "bg_color": "0,177,64",
            "output_format": "mp4",
            "auto_start": "false",
        }
        r = await http.post(JOBS, files={k: (None, v) for k, v in form.items()}, headers=key)
        job_id = assert_created(r, "draft")
        spec = (await gw.gateway.jobs.get(job_id)).spec.model_dump(mode="json")
        assert spec["background"]["rgb"] == [0, 177, 64] and spec["output_format"] == "mp4_h264"


async def test_error_paths(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        before = await ingest_seq(gw)
        v = {"video_url": VIDEO}
        cases = [
            ({"bg_type": "transparent", "output_format": "mp4"}, "invalid_parameter"),
            ({"background": {"type": "transparent"}, "output_format": "mp4"}, "invalid_parameter"),
            ({"output_format": "avi"}, "invalid_parameter"),
            ({"model": "ultra"}, "invalid_parameter"),
            ({"model": "pro", "text_prompt": "the dog"}, "invalid_parameter"),
            ({"text_prompt": 7}, "invalid_parameter"),
            ({"bg_type": "plaid"}, "invalid_parameter"),
            ({"bg_type": "custom"}, "missing_parameter"),
            ({"bg_type": "color", "bg_color": [0, 256, 0]}, "invalid_parameter"),
            ({"bg_type": "color", "bg_color": [0, 0]}, "invalid_parameter"),
            ({"bg_type": "color", "bg_color": [True, 0, 0]}, "invalid_parameter"),
            ({"bg_type": "color", "bg_color": "#GG0000"}, "invalid_parameter"),
            ({"bg_type": "image"}, "missing_parameter"),
            ({"bg_type": "image", "bg_image_url": "ftp://x/y.png"}, "invalid_parameter"),
            ({"bg_type": "green", "background": {"type": "blue"}}, "invalid_parameter"),
            ({"background": ["transparent"]}, "invalid_parameter"),
            ({"auto_start": "maybe"}, "invalid_parameter"),
            ({"webhook_url": "not a url"}, "invalid_parameter"),
            ({"webhook_url": "http://127.0.0.1:9/hook"}, "invalid_parameter"),  # the SSRF guard
            ({"video_url": "asset://../../etc"}, "invalid_parameter"),
            ({"start": 5, "end": 2}, "invalid_parameter"),  # the trim extension
            ({"start": -1}, "invalid_parameter"),
            ({"end": "soon"}, "invalid_parameter"),
        ]
        for params, code in cases:
            assert_error(await http.post(JOBS, json={**v, **params}, headers=key), 400, code)
        r = await http.post(
            JOBS, json={"model": "pro", "video_url": VIDEO, "text_prompt": "the dog"}, headers=key
        )
        assert "text_prompt" in r.json()["error"]["message"]
        for body, headers, code in [
            (b"", JSON_CT, "invalid_request_body"),
            (b"{oops", JSON_CT, "invalid_request_body"),
            (b"{}", JSON_CT, "missing_parameter"),
            (
                b'{"video_url": "%s"}' % VIDEO.encode(),
                {"content-type": "text/xml"},
                "unsupported_content_type",
            ),
        ]:
            assert_error(await http.post(JOBS, content=body, headers={**headers, **key}), 400, code)
        assert_error(
            await http.post("/api/process", json={"video_url": ""}, headers=key), 400, "missing_parameter"
        )
        assert_error(await http.get(f"{JOBS}/{uuid.uuid4()}", headers=key), 404, "not_found")
        assert_error(await http.post(f"{JOBS}/{uuid.uuid4()}/start", headers=key), 404, "not_found")
        assert await ingest_seq(gw) == before, "a refused request queued work"


async def test_auth_credits_and_rate_limit_shapes(nats_url, s3_endpoint, object_store) -> None:
    settings = settings_for(nats_url, s3_endpoint, object_store, rate_limit_per_s=0.5, rate_limit_burst=2)
    async with gateway(settings) as (gw, http):
        assert_error(await http.post(JOBS, json=GUIDE_EXAMPLE), 401, "invalid_auth_token")
        assert_error(
            await http.post(JOBS, json=GUIDE_EXAMPLE, headers={"X-Api-Key": "nope"}),
            401,
            "invalid_auth_token",
        )
        _, broke = await tenant(gw, credits=59)  # one untrimmed job with "original" reserves 60
        for _ in range(2):  # a refused request takes a token too
            r = await http.post(JOBS, json=GUIDE_EXAMPLE, headers=broke)
            assert_error(r, 403, "insufficient_api_credits")
        r = await http.post(JOBS, json=GUIDE_EXAMPLE, headers=broke)  # the bucket (burst 2) is now empty
        assert_error(r, 429, "rate_limit_exceeded")
        assert int(r.headers["retry-after"]) >= 1


async def test_draft_then_start(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw, credits=100)  # one untrimmed "original" job reserves 60
        before = await ingest_seq(gw)
        draft = {**CURL_EXAMPLE, "auto_start": False}
        job_id = assert_created(await http.post(JOBS, json=draft, headers=key), "draft")
        another = {**draft, "video_url": "https://cdn.example.com/other.mp4"}  # not a retry of the first
        second = assert_created(await http.post(JOBS, json=another, headers=key), "draft")
        assert await ingest_seq(gw) == before, "a draft queued work"
        assert (await gw.gateway.ledger.account(owner)).reserved_milli == 0, "a draft held credits"
        body = (await http.get(f"{JOBS}/{job_id}", headers=key)).json()
        assert body["status"] == "draft" and body["credits"] == {"reserved": 0.0, "charged": 0.0}

        r = await http.post(f"{JOBS}/{job_id}/start", headers=key)
        assert r.status_code == 200, r.text
        assert r.json() == {"success": True, "id": job_id, "status": "processing", "message": "Job started"}
        assert await ingest_seq(gw) > before
        assert (await gw.gateway.ledger.account(owner)).reserved_milli == 60_000
        assert (await http.get(f"{JOBS}/{job_id}", headers=key)).json()["status"] == "processing"
        # starting again is harmless: same job, nothing reserved or queued twice
        seq = await ingest_seq(gw)
        assert (await http.post(f"{JOBS}/{job_id}/start", headers=key)).json()["status"] == "processing"
        assert await ingest_seq(gw) == seq
        assert (await gw.gateway.ledger.account(owner)).reservations == 1

        # the second draft cannot be paid for now (40 left): 403 and still a draft; cancelled: 409
        assert_error(await http.post(f"{JOBS}/{second}/start", headers=key), 403, "insufficient_api_credits")
        assert (await gw.gateway.jobs.get(second)).status == "draft"
        assert await ingest_seq(gw) == seq
        await gw.gateway.cancel(second)
        assert_error(await http.post(f"{JOBS}/{second}/start", headers=key), 409, "conflict")
        # another owner cannot see or start it
        _, other = await tenant(gw)
        assert_error(await http.post(f"{JOBS}/{job_id}/start", headers=other), 404, "not_found")
        assert_error(await http.get(f"{JOBS}/{job_id}", headers=other), 404, "not_found")


async def test_draft_needs_the_credits_up_front(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw, credits=10)
        r = await http.post(JOBS, json={**GUIDE_EXAMPLE, "auto_start": False}, headers=key)
        assert_error(r, 403, "insufficient_api_credits")


async def test_idempotency(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        headers = {**key, "Idempotency-Key": f"k-{uuid.uuid4()}"}
        first = assert_created(await http.post(JOBS, json=CURL_EXAMPLE, headers=headers), "processing")
        seq = await ingest_seq(gw)
        r = await http.post(JOBS, json=CURL_EXAMPLE, headers=headers)
        assert assert_created(r, "processing") == first and r.headers["idempotent-replayed"] == "true"
        assert await ingest_seq(gw) == seq
        # the legacy path is the same endpoint: same key, same body, same job
        assert (
            assert_created(await http.post("/api/process", json=CURL_EXAMPLE, headers=headers), "processing")
            == first
        )
        assert_error(
            await http.post(JOBS, json={**CURL_EXAMPLE, "model": "light"}, headers=headers), 409, "conflict"
        )
        assert_error(
            await http.post(JOBS, json={**CURL_EXAMPLE, "auto_start": False}, headers=headers),
            409,
            "conflict",
        )


async def test_status_completed_and_failed(settings, object_store) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        params = {
            "video_url": VIDEO,
            "bg_type": "custom",
            "bg_color": [1, 2, 3],
            "output_format": "mp4",
            "model": "light",
        }
        params["webhook_url"] = "https://8.8.8.8/vbg-hook"
        job_id = assert_created(await http.post(JOBS, json=params, headers=key), "processing")
        object_store.put_bytes(object_keys.result(job_id, ".mp4"), b"mp4 bytes", "video/mp4")
        assert (await http.get(f"{JOBS}/{job_id}", headers=key)).json()["weights"] is None  # not matted yet
        await finish(gw, job_id, "completed", billed_seconds=20.0, weights="selfie_segmentation")
        body = (await http.get(f"{JOBS}/{job_id}", headers=key)).json()
        assert body["status"] == "completed" and body["progress"] == 100.0
        assert body["weights"] == "selfie_segmentation"  # our extension: the weight files that ran
        assert body["output_url"].startswith("http") and "X-Amz-Expires=120" in body["output_url"]
        assert body["output_url_expires_at"].endswith("Z") and body["result_expired"] is False
        assert body["model"] == "light" and body["output_format"] == "mp4"
        assert body["background"] == {"type": "color", "color": [1, 2, 3]}
        assert body["webhook_url"] == "https://8.8.8.8/vbg-hook"
        assert body["billed_seconds"] == 20.0
        (await http.get("/v1/usage", headers=key)).raise_for_status()  # settles what the event did not yet
        body = (await http.get(f"{JOBS}/{job_id}", headers=key)).json()
        assert body["credits"] == {"reserved": 0.0, "charged": 15.0}  # 20 s at 45 credits/min

        failed = assert_created(await http.post(JOBS, json=GUIDE_EXAMPLE, headers=key), "processing")
        await finish(gw, failed, "failed", error_code="unsupported_image_format", error="codec not supported")
        body = (await http.get(f"{JOBS}/{failed}", headers=key)).json()
        assert body["status"] == "failed" and body["output_url"] is None
        assert body["error"] == {"code": "unsupported_image_format", "message": "codec not supported"}


async def test_uploaded_asset_as_source(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        gatewaykit.own_asset(gw, owner, "up-1")
        job_id = assert_created(
            await http.post(JOBS, json={"video_url": "asset://up-1"}, headers=key), "processing"
        )
        assert (await gw.gateway.jobs.get(job_id)).spec.model_dump(mode="json")["source"] == {
            "asset_id": "up-1"
        }
        assert (await http.get(f"{JOBS}/{job_id}", headers=key)).json()["input"] == {
            "video_url": "asset://up-1",
            "start": 0.0,
            "end": None,
        }


async def test_trim_extension(settings) -> None:
    """start/end (our extension, which the web console sends) trim the source as in studio-background:
    seconds or clock times, echoed under `input`, and the reservation covers the trimmed span only."""
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        for params, start, end, reserved in [
            ({"start": 1.5, "end": 4.5}, 1.5, 4.5, 3.0),  # 3 s at 60 credits/min
            ({"start": "00:00:02", "end": "0:32"}, 2.0, 32.0, 30.0),
            ({"start": "2.25"}, 2.25, None, 60.0),  # no end: the longest input is reserved
        ]:
            job_id = assert_created(
                await http.post(JOBS, json={"video_url": VIDEO, **params}, headers=key), "processing"
            )
            assert (await gw.gateway.jobs.get(job_id)).spec.trim == TrimSpec(start=start, end=end)
            body = (await http.get(f"{JOBS}/{job_id}", headers=key)).json()
            assert body["input"] == {"video_url": VIDEO, "start": start, "end": end}
            assert body["credits"]["reserved"] == reserved
