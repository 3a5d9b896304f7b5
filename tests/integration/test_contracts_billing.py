"""Credits and usage across the dialects: reserve at submit, charge `billed_seconds` at the model's rate
once a job completes (settled from its last event), release on failure and cancel, `GET /v1/usage`, the
periodic sweep, and the admin CLI that creates keys and grants credits."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.common import bus
from services.common.record import Status
from services.gateway import admin, jobs
from services.gateway.credits import to_milli
from tests.integration.gatewaykit import VIDEO, finish, gateway, settings_for, tenant
from videobg import metrics, nats_subjects
from videobg.errors import Transient

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store):
    return settings_for(nats_url, s3_endpoint, object_store)


async def wait_for(pred, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def charged_total(dialect: str, model: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value(
            "videobg_credits_charged_total", {"dialect": dialect, "model": model}
        )
        or 0.0
    )


async def test_charge_on_completion_release_on_failure(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw, credits=100)
        # removebgvideo, model light (45/min): 60 s reserved = 45 credits
        r = await http.post("/v1/jobs", json={"video_url": VIDEO, "model": "light"}, headers=key)
        done_id = r.json()["id"]
        # studio, trimmed to 10 s at the default model's rate
        r = await http.post(
            "/v1/proxy/studio-background", json={"videoUrl": VIDEO, "start": 5, "end": 15}, headers=key
        )
        failed_id = r.json()["job"]["id"]
        rate = gw.gateway.billing.rates.rate("")
        usage = (await http.get("/v1/usage", headers=key)).json()
        assert usage["owner"] == owner and usage["metered"] is True
        assert usage["credits"] == {
            "balance": 100.0,
            "reserved": round(45 + 10 * rate / 60, 3),
            "available": round(100 - 45 - 10 * rate / 60, 3),
            "used": 0.0,
            "open_reservations": 2,
        }
        assert usage["jobs"] == {"total": 2, "by_status": {"queued": 2}}

        before = charged_total("removebgvideo", "light")
        await finish(gw, done_id, "completed", billed_seconds=12.5)  # 12.5 s at 45/min = 9.375
        await finish(gw, failed_id, "failed", error_code="malformed_image", error="undecodable")

        async def settled() -> bool:  # by the gateway's event subscription, not by the usage call
            return (await gw.gateway.ledger.account(owner)).reservations == 0

        await wait_for(settled)
        usage = (await http.get("/v1/usage", headers=key)).json()
        assert usage["credits"] == {
            "balance": 90.625,
            "reserved": 0.0,
            "available": 90.625,
            "used": 9.375,
            "open_reservations": 0,
        }
        assert usage["jobs"]["by_status"] == {"completed": 1, "failed": 1}
        assert usage["billed_seconds"] == 12.5
        assert charged_total("removebgvideo", "light") == pytest.approx(before + 9.375)

        done = await gw.gateway.jobs.get(done_id)
        assert done.credits == 9.375 and done.billing.state == "charged"
        failed = await gw.gateway.jobs.get(failed_id)
        assert failed.credits == 0.0 and failed.billing.state == "released"

        # settling again (a redelivered event, another replica, the sweep) changes nothing
        for job_id in (done_id, failed_id):
            await gw.gateway.billing.settle(job_id)
        await gw.gateway.billing.sweep(0.0)
        assert (await gw.gateway.ledger.account(owner)).balance_milli == to_milli(90.625)
        assert charged_total("removebgvideo", "light") == pytest.approx(before + 9.375)


async def test_cancel_releases_and_orphans_are_swept(settings) -> None:
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw, credits=200)
        job_id = (
            await http.post("/v1/video/remove-background", json={"video_url": VIDEO}, headers=key)
        ).json()["job_id"]
        assert (await gw.gateway.ledger.account(owner)).reservations == 1
        await http.post(f"/internal/jobs/{job_id}/cancel", headers=key)
        account = await gw.gateway.ledger.account(owner)
        assert account.reservations == 0 and account.balance_milli == 200_000

        # a reservation whose job was never created (a gateway died in between) is released by the sweep
        ghost = str(uuid.uuid4())
        await gw.gateway.ledger.reserve(owner, ghost, 50_000)
        await gw.gateway.billing.sweep(orphan_after_s=3600.0)
        assert (await gw.gateway.ledger.account(owner)).reservations == 1, "released a young reservation"
        await gw.gateway.billing.sweep(orphan_after_s=0.0)
        account = await gw.gateway.ledger.account(owner)
        assert account.reservations == 0 and account.balance_milli == 200_000


async def test_a_submit_that_could_not_be_queued_is_free_and_its_retry_runs_it(settings, monkeypatch) -> None:
    """NATS takes the record but not the work (a stream mid-election): the client gets a 503 and keeps
    its credits; the same request again (its Idempotency-Key) queues that job after all, as a client
    told "try again" expects, instead of handing back a failed job (found by the failover drill)."""
    real_publish = bus.publish_work
    refuse = {"left": 1}

    async def flaky_publish(*args, **kwargs):
        if refuse["left"] > 0:
            refuse["left"] -= 1
            raise Transient("The message bus is unavailable")
        return await real_publish(*args, **kwargs)

    monkeypatch.setattr(bus, "publish_work", flaky_publish)
    monkeypatch.setattr(jobs, "ENQUEUE_BUDGET_S", 0.0)  # one try per submit
    async with gateway(settings) as (gw, http):
        owner, key = await tenant(gw, credits=100)
        headers = {**key, "Idempotency-Key": f"retry-{uuid.uuid4()}"}
        body = {"video_url": VIDEO, "model": "light"}
        first = await http.post("/v1/jobs", json=body, headers=headers)
        assert first.status_code == 503, first.text
        account = await gw.gateway.ledger.account(owner)
        assert account.reservations == 0 and account.balance_milli == 100_000  # nothing held for it

        again = await http.post("/v1/jobs", json=body, headers=headers)
        assert again.status_code == 200, again.text
        job_id = again.json()["id"]
        job = await gw.gateway.jobs.get(job_id)
        assert job.status == Status.QUEUED and job.stage == "ingest" and not job.error_code
        assert (await gw.gateway.ledger.account(owner)).reservations == 1  # held again
        msg = await gw.gateway.js.get_last_msg(nats_subjects.WORK_STREAM, nats_subjects.WORK_INGEST)
        assert json.loads(msg.data) == {"job_id": job_id}

        # and a third time: the same job, already queued (a plain replay)
        third = await http.post("/v1/jobs", json=body, headers=headers)
        assert third.status_code == 200 and third.json()["id"] == job_id
        assert (await gw.gateway.ledger.account(owner)).reservations == 1

        await finish(gw, job_id, "completed", billed_seconds=30.0)
        await wait_for(lambda: _settled(gw, owner))


async def _settled(gw, owner: str) -> bool:
    return (await gw.gateway.ledger.account(owner)).reservations == 0


async def test_anonymous_usage_when_auth_is_off(nats_url, s3_endpoint, object_store) -> None:
    settings = settings_for(nats_url, s3_endpoint, object_store, auth_required=False)
    async with gateway(settings) as (gw, http):
        r = await http.post("/v1/jobs", json={"video_url": VIDEO})
        assert r.status_code == 200, r.text
        record = await gw.gateway.jobs.get(r.json()["id"])
        assert record.owner == "anonymous" and record.billing is None
        usage = (await http.get("/v1/usage")).json()
        assert usage["metered"] is False and usage["credits"] is None and usage["key_id"] is None
        # a key that is sent is still checked, and then the caller is metered
        assert (await http.get("/v1/usage", headers={"X-API-Key": "vbg_wrong"})).status_code == 401
        _, key = await tenant(gw, credits=5)
        assert (await http.get("/v1/usage", headers=key)).json()["credits"]["balance"] == 5.0


async def test_admin_cli(settings, nats_url, capsys) -> None:
    owner = f"cli-{uuid.uuid4().hex[:8]}"
    base = ["--nats-url", nats_url, "--json"]

    def run(*argv: str) -> dict:
        assert admin.main([*base, *argv]) == 0
        return json.loads(capsys.readouterr().out)

    created = await asyncio.to_thread(run, "create-key", "--owner", owner, "--credits", "120")
    key, key_id = created["key"], created["id"]
    assert key.startswith(f"vbg_{key_id}_") and created["credits"]["balance"] == 120.0
    listed = (await asyncio.to_thread(run, "list-keys", "--owner", owner))["keys"]
    assert [k["id"] for k in listed] == [key_id]
    assert key not in json.dumps(listed) and "hash" not in listed[0]
    assert (await asyncio.to_thread(run, "add-credits", "--owner", owner, "--credits", "30"))["credits"][
        "balance"
    ] == 150.0

    async with gateway(settings) as (gw, http):
        stored = await gw.gateway.keys.get(key_id)
        assert key not in json.dumps(stored.__dict__), "the key itself was stored"
        usage = (await http.get("/v1/usage", headers={"X-Api-Key": key})).json()
        assert usage["owner"] == owner and usage["credits"]["balance"] == 150.0
        revoked = await asyncio.to_thread(run, "revoke-key", key_id)
        assert revoked["revoked"]
        assert (await http.get("/v1/usage", headers={"X-Api-Key": key})).status_code == 401

    assert await asyncio.to_thread(admin.main, [*base, "create-key", "--owner", "bad owner!"]) == 1
    assert "invalid_parameter" in capsys.readouterr().err
    assert await asyncio.to_thread(admin.main, [*base, "revoke-key", "000000000000"]) == 1
    assert "not_found" in capsys.readouterr().err
