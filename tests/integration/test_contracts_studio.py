"""The studio-background contract (seed 000) with keys required: the seed's example request and its
exact response, background and trim translation, the status endpoint `GET /v2/jobs/{job_id}`, and the
error shape {"status": "error", "error": {"code", "message"}} on every error path."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.common.objstore import ObjectStore
from tests.integration import gatewaykit
from tests.integration.gatewaykit import JSON_CT, VIDEO, finish, gateway, ingest_seq, settings_for, tenant
from videobg import object_keys

pytestmark = pytest.mark.integration

SUBMIT = "/v1/proxy/studio-background"
SEED_EXAMPLE = {"videoUrl": "https://example.com/video.mp4", "back_ground": "#1E90FF", "start": 0, "end": 30}


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store):
    return settings_for(nats_url, s3_endpoint, object_store)


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"status", "error"} and body["status"] == "error", body
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"], body
    assert body["error"]["code"] == code, body


async def test_seed_example_exact_response(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)
        assert r.status_code == 202, r.text
        job_id = r.json()["job"]["id"]
        assert r.json() == {
            "status": "accepted",
            "message": "Job queued for processing",
            "job": {"id": job_id, "status": "queued", "service": "studio-background"},
        }
        assert r.headers["location"] == f"/v2/jobs/{job_id}"

        record = await gw.gateway.jobs.get(job_id)
        spec = record.spec.model_dump(mode="json")
        assert spec["source"] == {"url": SEED_EXAMPLE["videoUrl"]}
        assert spec["background"]["kind"] == "color" and spec["background"]["rgb"] == [30, 144, 255]
        assert spec["trim"] == {"start": 0.0, "end": 30.0}
        assert spec["output_format"] == "mp4_h264"  # always MP4 H.264 + AAC
        # billed per second of the trimmed segment: 30 s are reserved, not the 60 s maximum
        rate = gw.gateway.billing.rates.rate("")
        assert record.billing.reserved_seconds == 30.0
        assert (await gw.gateway.ledger.account(owner)).reserved_milli == round(30 * rate / 60 * 1000)

        r = await http.get(f"/v2/jobs/{job_id}", headers=key)
        assert r.status_code == 200
        job = r.json()["job"]
        assert (job["id"], job["status"], job["service"], job["progress"]) == (
            job_id,
            "queued",
            "studio-background",
            0.0,
        )
        assert job["result"] is None and job["error"] is None  # present, null (CONTRACTS.md)


@pytest.mark.parametrize(
    "params, kind, rgb, image, trim",
    [
        ({}, "white", [255, 255, 255], None, {"start": 0.0, "end": None}),  # remove: subject over white
        ({"back_ground": "#abc"}, "color", [170, 187, 204], None, {"start": 0.0, "end": None}),
        ({"back_ground": "00ff7f"}, "color", [0, 255, 127], None, {"start": 0.0, "end": None}),
        (
            {"imageUrl": "https://example.com/bg.jpg", "start": "00:00:05", "end": "00:01:00.5"},
            "image",
            None,
            {"url": "https://example.com/bg.jpg"},
            {"start": 5.0, "end": 60.5},
        ),
        ({"start": "1:30", "end": 100}, "white", None, None, {"start": 90.0, "end": 100.0}),
        ({"start": "2.5"}, "white", None, None, {"start": 2.5, "end": None}),
        ({"imageUrl": "asset://bg-1"}, "image", None, {"asset_id": "bg-1"}, {"start": 0.0, "end": None}),
    ],
)
async def test_background_and_trim(settings, params, kind, rgb, image, trim) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        if image and image.get("asset_id"):  # an upload of this tenant's: another's would be refused
            gatewaykit.own_asset(gw, owner, image["asset_id"])
        r = await http.post(SUBMIT, json={"videoUrl": VIDEO, **params}, headers=key)
        assert r.status_code == 202, r.text
        spec = (await gw.gateway.jobs.get(r.json()["job"]["id"])).spec.model_dump(mode="json")
        assert spec["background"]["kind"] == kind
        if rgb is not None:
            assert spec["background"]["rgb"] == rgb
        assert spec["background"]["image"] == image
        assert spec["trim"] == trim


async def test_error_paths(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        before = await ingest_seq(gw)
        cases = [
            (b"", JSON_CT, "invalid_request_body"),
            (b"{bad json", JSON_CT, "invalid_request_body"),
            (b"[]", JSON_CT, "invalid_request_body"),
            (b"{}", JSON_CT, "missing_parameter"),
            (b'{"video_url": "%s"}' % VIDEO.encode(), JSON_CT, "missing_parameter"),  # camelCase only
            (b'{"videoUrl": "file:///etc/passwd"}', JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "back_ground": "#12345"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "back_ground": "blue"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "back_ground": 255}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (
                b'{"videoUrl": "%s", "back_ground": "#000", "imageUrl": "https://example.com/b.png"}'
                % VIDEO.encode(),
                JSON_CT,
                "invalid_parameter",
            ),
            (b'{"videoUrl": "%s", "imageUrl": "not a url"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "start": 30, "end": 10}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "start": "00:99:00"}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "end": -3}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (b'{"videoUrl": "%s", "start": true}' % VIDEO.encode(), JSON_CT, "invalid_parameter"),
            (
                b'{"videoUrl": "%s"}' % VIDEO.encode(),
                {"content-type": "text/plain"},
                "unsupported_content_type",
            ),
        ]
        for body, headers, code in cases:
            assert_error(await http.post(SUBMIT, content=body, headers={**headers, **key}), 400, code)
        assert_error(await http.post(SUBMIT, json=SEED_EXAMPLE), 401, "invalid_auth_token")
        assert_error(await http.get(f"/v2/jobs/{uuid.uuid4()}", headers=key), 404, "not_found")
        assert_error(await http.get("/v2/jobs/not..an..id", headers=key), 404, "not_found")
        _, broke = await tenant(gw, credits=0)
        assert_error(
            await http.post(SUBMIT, json=SEED_EXAMPLE, headers=broke), 403, "insufficient_api_credits"
        )
        idem = {**key, "Idempotency-Key": uuid.uuid4().hex}
        assert (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=idem)).status_code == 202
        assert_error(await http.post(SUBMIT, json={**SEED_EXAMPLE, "end": 31}, headers=idem), 409, "conflict")
        assert await ingest_seq(gw) == before + 1  # only the one accepted job


async def test_rate_limit_shape(nats_url, s3_endpoint, object_store) -> None:
    settings = settings_for(nats_url, s3_endpoint, object_store, rate_limit_per_s=0.5, rate_limit_burst=1)
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        assert (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)).status_code == 202
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)
        assert_error(r, 429, "rate_limit_exceeded")
        assert int(r.headers["retry-after"]) in (1, 2)


async def test_completed_result_and_failure(settings, object_store: ObjectStore) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        job_id = (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)).json()["job"]["id"]
        object_store.put_bytes(object_keys.result(job_id, ".mp4"), b"mp4 bytes", "video/mp4")
        await finish(gw, job_id, "completed", billed_seconds=30.0, weights="rvm_mobilenetv3+u2netp")
        job = (await http.get(f"/v2/jobs/{job_id}", headers=key)).json()["job"]
        assert job["status"] == "completed" and job["progress"] == 100.0
        assert job["weights"] == "rvm_mobilenetv3+u2netp"  # our extension: the weight files that ran
        assert job["billed_seconds"] == 30.0
        result = job["result"]
        assert set(result) == {"url", "expires_at", "expired", "content_type"}
        assert result["content_type"] == "video/mp4" and result["expires_at"].endswith("Z")
        assert result["expired"] is False
        async with httpx.AsyncClient(trust_env=False) as plain:
            assert (await plain.get(result["url"])).content == b"mp4 bytes"

        other_clip = {**SEED_EXAMPLE, "videoUrl": SEED_EXAMPLE["videoUrl"] + "?take=2"}  # not a retry
        failed = (await http.post(SUBMIT, json=other_clip, headers=key)).json()["job"]["id"]
        await finish(
            gw, failed, "failed", error_code="malformed_image", error="The video could not be decoded"
        )
        job = (await http.get(f"/v2/jobs/{failed}", headers=key)).json()["job"]
        assert job["status"] == "failed" and job["result"] is None
        assert job["error"] == {"code": "malformed_image", "message": "The video could not be decoded"}
