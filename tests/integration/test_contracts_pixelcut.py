"""The Pixelcut contract (seed 003) with keys required: the seed's example request, its 202 + Location,
and every error response of the OpenAPI document (400 codes, 401, 403, 429), field by field.

The gateway runs in-process against the session's nats-server and SeaweedFS; no stage runs (a job
stays queued unless the test plays a stage on its record)."""

from __future__ import annotations

import uuid

import pytest

from services.common.record import SourceRef
from services.gateway.api_keys import NOT_FOUND_MESSAGE
from tests.integration.gatewaykit import JSON_CT, VIDEO, finish, gateway, ingest_seq, settings_for, tenant

pytestmark = pytest.mark.integration

SUBMIT = "/v1/video/remove-background"
SEED_EXAMPLE = {"video_url": "https://example.com/video.mp4"}  # VideoURLParameter.example
BAD_KEY_BODY = {"error": "API Token not found", "error_code": "invalid_auth_token"}


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store):
    return settings_for(nats_url, s3_endpoint, object_store)


async def test_seed_example_is_accepted(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)
        assert r.status_code == 202, r.text
        assert set(r.json()) == {"job_id"}
        job_id = r.json()["job_id"]
        assert uuid.UUID(job_id)
        assert r.headers["location"] == f"/v1/video/remove-background/job/{job_id}"
        assert "idempotent-replayed" not in r.headers

        record = await gw.gateway.jobs.get(job_id)
        assert record.owner == owner and record.key_id == key["X-API-Key"].split("_")[1]
        assert record.spec.source == SourceRef(url=SEED_EXAMPLE["video_url"])
        # the contract's defaults: background_color "#000000", output_format mp4_h264
        assert record.spec.output_format == "mp4_h264" and record.spec.background.rgb == (0, 0, 0)
        assert record.billing.state == "reserved"

        r = await http.get(r.headers["location"], headers=key)
        assert r.status_code == 200
        assert r.json() == {  # fields without a value are present as null (CONTRACTS.md)
            "job_id": job_id,
            "status": "queued",
            "progress": 0.0,
            "result_url": None,
            "result_url_expires_at": None,
            "result_expired": None,
            "weights": None,  # our extension, additive: the weight files that ran, once matting starts
            "error": None,
            "error_code": None,
        }


async def test_header_spellings(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        token = key["X-API-Key"]
        for headers in ({"X-API-KEY": token}, {"x-api-key": token}, {"Authorization": f"Bearer {token}"}):
            r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=headers)
            assert r.status_code == 202, (headers, r.text)


async def test_401_invalid_auth_token(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        token = key["X-API-Key"]
        key_id = token.split("_")[1]
        wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        before = await ingest_seq(gw)
        for headers in (
            {},
            {"X-API-KEY": ""},
            {"X-API-KEY": "sk_not_ours"},
            {"X-API-KEY": wrong_secret},
            {"X-API-KEY": f"vbg_{uuid.uuid4().hex[:12]}_{'A' * 43}"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
        ):
            r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.json() == BAD_KEY_BODY
            # the key is checked before the body: a bad body without a key is a 401, not a 400
            r = await http.post(SUBMIT, content=b"{nope", headers={**headers, **JSON_CT})
            assert r.status_code == 401
        r = await http.get(f"{SUBMIT}/job/{uuid.uuid4()}")
        assert r.status_code == 401 and r.json() == BAD_KEY_BODY

        await gw.gateway.keys.revoke(key_id)
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)
        assert r.status_code == 401 and r.json()["error"] == NOT_FOUND_MESSAGE
        assert await ingest_seq(gw) == before, "a refused request queued work"


async def test_403_insufficient_api_credits(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw, credits=0)
        before = await ingest_seq(gw)
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)
        assert r.status_code == 403, r.text
        assert r.json() == {
            "error": "Insufficient credits available",
            "error_code": "insufficient_api_credits",
        }
        # just short of one job's reservation (60 s at the default model's rate): still refused
        rate = gw.gateway.billing.rates.rate("")
        await gw.gateway.ledger.add(owner, rate - 0.001)
        assert (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)).status_code == 403
        assert await ingest_seq(gw) == before
        assert (await gw.gateway.jobs.list(owner=owner)) == []
        await gw.gateway.ledger.add(owner, 0.001)
        assert (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)).status_code == 202


async def test_429_rate_limit_exceeded(nats_url, s3_endpoint, object_store) -> None:
    settings = settings_for(nats_url, s3_endpoint, object_store, rate_limit_per_s=0.2, rate_limit_burst=3)
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        _, other = await tenant(gw)
        url = f"{SUBMIT}/job/{uuid.uuid4()}"
        for _ in range(3):
            assert (await http.get(url, headers=key)).status_code == 404
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)
        assert r.status_code == 429, r.text
        assert r.json() == {"error": "Too many requests", "error_code": "rate_limit_exceeded"}
        assert 1 <= int(r.headers["retry-after"]) <= 5  # one token at 0.2/s
        # buckets are per key
        assert (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=other)).status_code == 202


async def test_400_codes(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        before = await ingest_seq(gw)
        cases = [
            (b"", JSON_CT, "invalid_request_body"),
            (b"{not json", JSON_CT, "invalid_request_body"),
            (b"{}", JSON_CT, "missing_parameter"),
            (
                b'{"video_url": "%s", "background_color": "#12345"}' % VIDEO.encode(),
                JSON_CT,
                "invalid_parameter",
            ),
            (
                b'{"video_url": "%s", "background_color": "transparent", "output_format": "mp4_h264"}'
                % VIDEO.encode(),
                JSON_CT,
                "invalid_parameter",
            ),
            (
                b'{"video_url": "%s"}' % VIDEO.encode(),
                {"content-type": "text/plain"},
                "unsupported_content_type",
            ),
        ]
        for body, headers, code in cases:
            r = await http.post(SUBMIT, content=body, headers={**headers, **key})
            assert r.status_code == 400, (body, r.text)
            assert set(r.json()) == {"error", "error_code"} and r.json()["error_code"] == code, (
                body,
                r.json(),
            )
        r = await http.post(SUBMIT, json=SEED_EXAMPLE, headers={**key, "Idempotency-Key": "x" * 300})
        assert r.status_code == 400 and r.json()["error_code"] == "invalid_parameter"
        assert await ingest_seq(gw) == before


async def test_idempotent_retry_and_mismatch(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw)
        headers = {**key, "Idempotency-Key": f"order-{uuid.uuid4()}"}
        first = await http.post(SUBMIT, json=SEED_EXAMPLE, headers=headers)
        assert first.status_code == 202
        seq = await ingest_seq(gw)
        again = await http.post(SUBMIT, json=dict(reversed(list(SEED_EXAMPLE.items()))), headers=headers)
        assert again.status_code == 202 and again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
        assert await ingest_seq(gw) == seq, "the retry queued a second message"
        account = await gw.gateway.ledger.account(owner)
        assert account.reservations == 1, "the retry reserved credits twice"

        r = await http.post(SUBMIT, json={**SEED_EXAMPLE, "background_color": "#FFFFFF"}, headers=headers)
        assert r.status_code == 409, r.text
        assert r.json()["error_code"] == "conflict" and "Idempotency-Key" in r.json()["error"]
        # keys are per owner: another tenant's same key is another job
        _, key2 = await tenant(gw)
        r = await http.post(
            SUBMIT, json=SEED_EXAMPLE, headers={**key2, "Idempotency-Key": headers["Idempotency-Key"]}
        )
        assert r.status_code == 202 and r.json()["job_id"] != first.json()["job_id"]


async def test_jobs_are_private_and_failures_carry_codes(settings) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        _, other = await tenant(gw)
        job_id = (await http.post(SUBMIT, json=SEED_EXAMPLE, headers=key)).json()["job_id"]
        r = await http.get(f"{SUBMIT}/job/{job_id}", headers=other)
        assert r.status_code == 404 and r.json()["error_code"] == "not_found"
        # input limits are enforced at ingest: the job fails with the contract's code
        await finish(gw, job_id, "failed", error_code="file_size_too_large", error="File is 120.0 MB")
        body = (await http.get(f"{SUBMIT}/job/{job_id}", headers=key)).json()
        assert body == {
            "job_id": job_id,
            "status": "failed",
            "progress": 0.0,
            "result_url": None,
            "result_url_expires_at": None,
            "result_expired": None,
            "weights": None,
            "error": "File is 120.0 MB",
            "error_code": "file_size_too_large",
        }
