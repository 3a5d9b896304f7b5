"""Webhooks against a real nats-server and SeaweedFS: the gateway in-process with its dispatcher, a receiver
on 127.0.0.1 (admitted by the allow-list here, as a local stack would), and the test playing the stages
by moving records and publishing events.

Signatures are checked with the algorithm as docs/API.md states it, written out here, not with the
module's own `verify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest

from services.common import bus, ssrf
from services.common.objstore import ObjectStore
from services.common.record import Job, JobSpec, SourceRef, Status, WebhookDelivery, WebhookState
from services.gateway import results
from services.gateway.server import RunningGateway, running
from services.gateway.settings import GatewaySettings
from services.gateway.webhooks import dispatch, signing
from tests.integration import gatewaykit
from videobg import object_keys
from videobg.errors import InvalidInput

pytestmark = pytest.mark.integration

VIDEO = "http://127.0.0.1:9/clip.mp4"  # never fetched: no stage runs here
BACKOFF_S = 0.2


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST. /ok answers 200; /flaky answers 500 to its
    first two requests, then 200."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    flaky_failures: int = 2

    def of(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                rec.got.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                    )
                )
                fail = self.path == "/flaky" and len(rec.of("/flaky")) <= rec.flaky_failures
            self.send_response(500 if fail else 200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(nats_url: str, s3_endpoint: str, object_store: ObjectStore) -> GatewaySettings:
    return gatewaykit.server_settings(
        nats_url,
        s3_endpoint,
        object_store,
        auth_required=False,
        result_url_ttl_s=120,
        fetch_allow="127.0.0.0/8",  # the receiver is on loopback
        webhook_secret="integration-test-secret",
        webhook_backoff_s=BACKOFF_S,
        webhook_max_attempts=4,
        webhook_timeout_s=5.0,
    )


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    async with (
        running(settings) as gw,
        dispatch.dispatching(gw.gateway),
        httpx.AsyncClient(base_url=gw.url, trust_env=False) as http,
    ):
        yield gw, http


async def submit(gw: RunningGateway, webhook_url: str) -> str:
    spec = JobSpec(
        source=SourceRef(url=VIDEO),
        output_format="mp4_h264",
        webhook_url=webhook_url,
        owner="anonymous",
        dialect="test",
    )
    return (await gw.gateway.submit(spec)).id


async def wait_for(pred, timeout_s: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def signature_ok(secret: str, r: Received) -> bool:
    """docs/API.md, "Verifying a webhook": HMAC-SHA256 over f"{timestamp}.{body}", hex, in `v1=`; the
    timestamp no more than 5 minutes away."""
    ts = r.headers["x-videobg-timestamp"]
    if abs(time.time() - int(ts)) > 300:
        return False
    expected = hmac.new(secret.encode(), ts.encode() + b"." + r.body, hashlib.sha256).hexdigest()
    return any(
        hmac.compare_digest(part.strip().removeprefix("v1="), expected)
        for part in r.headers["x-videobg-signature"].split(",")
        if part.strip().startswith("v1=")
    )


async def test_started_and_completed_are_delivered_signed(
    settings: GatewaySettings, receiver: Receiver, object_store: ObjectStore
) -> None:
    async with gateway(settings) as (gw, http):
        secret = (await http.get("/v1/webhooks/secret")).json()["secret"]
        job_id = await submit(gw, f"{receiver.url}/ok")
        quiet = await submit(gw, "")  # no webhook: nothing is sent, nothing recorded
        store, js = gw.gateway.jobs, gw.gateway.js
        for jid in (job_id, quiet):
            assert await store.transition(jid, ("queued",), "processing", stage="ingest", progress=1)
            await bus.publish_event(js, jid, {"stage": "ingest", "status": "processing", "progress": 1})
        await bus.publish_event(js, job_id, {"stage": "segment", "status": "processing", "progress": 40})
        result_key = object_keys.result(job_id, ".mp4")
        object_store.put_bytes(result_key, b"the result", "video/mp4")
        assert await store.transition(
            job_id, ("processing",), "completed", progress=100, result_key=result_key
        )
        await bus.publish_event(js, job_id, {"stage": "encode", "status": "completed", "progress": 100})

        await wait_for(lambda: len(receiver.got) >= 2, what="two deliveries")
        await asyncio.sleep(0.5)  # nothing more should come
        job = await store.get(job_id)
        assert "webhook" not in await store.get(quiet)

    started, completed = receiver.got
    assert [r.headers["x-videobg-event"] for r in receiver.got] == ["job.started", "job.completed"]
    for r in receiver.got:
        assert r.path == "/ok" and r.headers["content-type"] == "application/json"
        assert signature_ok(secret, r), r.headers
        body = json.loads(r.body)
        assert body["job_id"] == job_id and body["event"] == r.headers["x-videobg-event"]
        assert body["delivery_id"] == r.headers["x-videobg-delivery"]
    assert len({r.headers["x-videobg-delivery"] for r in receiver.got}) == 2
    assert json.loads(started.body)["status"] == "processing"
    done = json.loads(completed.body)
    assert done["status"] == "completed" and done["error"] is None and done["created_at"].endswith("Z")
    assert "X-Amz-Expires=120" in done["result"]["url"] and done["result"]["output_format"] == "mp4_h264"
    async with httpx.AsyncClient(trust_env=False) as plain:
        assert (await plain.get(done["result"]["url"])).content == b"the result"

    # the secret is per owner: another owner's secret does not verify, a changed body does not either
    assert not signature_ok(signing.owner_secret(settings.webhook_secret, "someone-else"), completed)
    tampered = Received(completed.path, completed.headers, completed.body.replace(b"completed", b"failed"), 0)
    assert not signature_ok(secret, tampered)
    assert signing.verify(secret, completed.body, completed.headers["x-videobg-timestamp"],
                           completed.headers["x-videobg-signature"])  # fmt: skip
    stale = str(int(completed.headers["x-videobg-timestamp"]) - 301)
    assert not signing.verify(
        secret, completed.body, stale, "v1=" + signing.sign(secret, stale, completed.body)
    )

    hook = job.webhook
    assert (hook.event, hook.attempts, hook.last_status, hook.delivered) == (
        "job.completed",
        1,
        200,
        True,
    )
    assert hook.events["job.started"].delivered and hook.events["job.started"].attempts == 1


async def test_failing_receiver_is_retried_with_backoff(
    settings: GatewaySettings, receiver: Receiver
) -> None:
    """/flaky fails twice: job.started goes out three times, same delivery id, with growing gaps, while
    more progress events of the job arrive (they must neither add attempts nor cut the retries short);
    then job.failed is delivered at its first attempt."""
    async with gateway(settings) as (gw, _):
        store, js = gw.gateway.jobs, gw.gateway.js
        job_id = await submit(gw, f"{receiver.url}/flaky")
        await store.transition(job_id, ("queued",), "processing", stage="ingest", progress=1)
        await bus.publish_event(js, job_id, {"stage": "ingest", "status": "processing", "progress": 1})
        for progress in (10, 20, 30):
            await asyncio.sleep(0.1)
            await bus.publish_event(
                js, job_id, {"stage": "segment", "status": "processing", "progress": progress}
            )

        async def state(event: str) -> WebhookDelivery:
            return (await store.get(job_id)).webhook.events.get(event) or WebhookDelivery()

        deadline = time.monotonic() + 15
        while not (await state("job.started")).delivered:
            assert time.monotonic() < deadline, await state("job.started")
            await asyncio.sleep(0.05)
        await store.transition(
            job_id,
            ("processing",),
            "failed",
            error_code="malformed_image",
            error="The video could not be decoded",
        )
        await bus.publish_event(
            js, job_id, {"stage": "ingest", "status": "failed", "error_code": "malformed_image"}
        )
        await wait_for(lambda: len(receiver.of("/flaky")) >= 4, what="the job.failed delivery")
        await asyncio.sleep(1.0)  # time enough for an extra attempt, were one to come
        job = await store.get(job_id)

    tries = receiver.of("/flaky")
    assert [r.headers["x-videobg-event"] for r in tries] == ["job.started"] * 3 + ["job.failed"]
    started = tries[:3]
    assert [r.headers["x-videobg-attempt"] for r in started] == ["1", "2", "3"]
    assert len({r.headers["x-videobg-delivery"] for r in started}) == 1  # one delivery, three attempts
    gaps = [b.at - a.at for a, b in zip(started, started[1:], strict=False)]
    assert gaps[0] >= BACKOFF_S * 0.9 and gaps[1] >= 2 * BACKOFF_S * 0.9, gaps  # exponential backoff
    body = json.loads(tries[-1].body)
    assert body["event"] == "job.failed" and body["status"] == "failed" and body["result"] is None
    assert body["error"] == {"code": "malformed_image", "message": "The video could not be decoded"}
    events = job.webhook.events
    s, f = events["job.started"], events["job.failed"]
    assert (s.attempts, s.last_status, s.delivered, s.gave_up) == (3, 200, True, False)
    assert (f.attempts, f.last_status, f.delivered) == (1, 200, True)
    assert (job.webhook.event, job.webhook.attempts, job.webhook.delivered) == (
        "job.failed",
        1,
        True,
    )


async def test_private_webhook_url_is_refused(
    settings: GatewaySettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At submit the guard refuses a webhook URL inside the private range (no lookup needed, no connection
    made); a job that carries one anyway (made before the check, or by a trusted caller) is given up at
    its first attempt without a request."""

    def no_connect(*a, **kw):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    with pytest.raises(InvalidInput, match="private"):
        await ssrf.check_webhook_url("http://10.0.0.1/hook", settings.fetch_allow)
    with pytest.raises(InvalidInput):
        await ssrf.check_webhook_url("http://[fd00::1]:8080/hook", settings.fetch_allow)
    monkeypatch.setattr(ssrf, "resolve", lambda host, port: ["192.168.1.20"])
    with pytest.raises(InvalidInput, match="resolves to a private"):
        await ssrf.check_webhook_url("https://hooks.example.com/x", settings.fetch_allow)
    monkeypatch.undo()

    async with running(settings.model_copy(update={"webhooks_enabled": False})) as gw:
        monkeypatch.setattr(socket.socket, "connect", no_connect)  # after the gateway connected to NATS
        with pytest.raises(InvalidInput, match="private"):  # the submit path every dialect and gRPC take
            await submit(gw, "http://10.0.0.1/hook")
        monkeypatch.undo()

    async def no_send(*a, **kw):
        raise AssertionError("a request was sent")

    monkeypatch.setattr(dispatch, "send_pinned_async", no_send)
    async with gateway(settings) as (gw, _):
        job_id = f"hook-{uuid.uuid4().hex[:12]}"
        spec = JobSpec(source=SourceRef(url=VIDEO), webhook_url="http://10.0.0.1/hook", owner="anonymous")
        await gw.gateway.jobs.create(Job(id=job_id, owner="anonymous", status=Status.PROCESSING, spec=spec))
        await bus.publish_event(gw.gateway.js, job_id, {"stage": "ingest", "status": "processing"})

        async def record() -> WebhookState:
            return (await gw.gateway.jobs.get(job_id)).webhook

        deadline = time.monotonic() + 10
        while not (await record()).attempts:
            assert time.monotonic() < deadline, "no attempt recorded"
            await asyncio.sleep(0.05)
        state = (await record()).events["job.started"]
    assert (state.attempts, state.delivered, state.gave_up, state.last_status) == (
        1,
        False,
        True,
        None,
    )
    assert "private" in state.last_error


async def test_result_urls_expire_and_are_minted_again(
    settings: GatewaySettings, object_store: ObjectStore
) -> None:
    """results.result_view, which webhooks and the dialects embed: a fresh presigned URL on every read,
    valid result_url_ttl_s; the old one stops working, the job keeps answering; once the result object
    is gone, result_expired.

    No step depends on timing finer than the S3 server's: a URL is fetched only while it has a minute to
    live (S3 counts expiry from X-Amz-Date, whole seconds, so a 1 s URL can be dead on arrival on a loaded
    machine), and the 1 s URL is waited on until it is refused."""
    long_ttl = settings.model_copy(update={"result_url_ttl_s": 60.0, "webhooks_enabled": False})
    async with running(long_ttl) as gw:
        job_id = await submit(gw, "")
        assert await results.result_view(gw.gateway, await gw.gateway.jobs.get(job_id)) == {}
        key = object_keys.result(job_id, ".mp4")
        object_store.put_bytes(key, b"result v1", "video/mp4")
        await gw.gateway.jobs.transition(job_id, ("queued",), "completed", result_key=key, progress=100)
        job = await gw.gateway.jobs.get(job_id)

        first = await results.result_view(gw.gateway, job)
        assert first["result_expired"] is False and "X-Amz-Expires=60&" in first["result_url"]
        expires = datetime.fromisoformat(first["result_url_expires_at"].replace("Z", "+00:00"))
        assert abs((expires - datetime.now(UTC)).total_seconds() - 60.0) < 10.0
        async with httpx.AsyncClient(trust_env=False) as plain:
            assert (await plain.get(first["result_url"])).content == b"result v1"
            gw.gateway.settings = long_ttl.model_copy(update={"result_url_ttl_s": 1.0})
            short = (await results.result_view(gw.gateway, job))["result_url"]
            assert "X-Amz-Expires=1&" in short
            deadline = time.monotonic() + 30.0
            while (status := (await plain.get(short)).status_code) != 403:  # expired
                assert time.monotonic() < deadline, f"a 1 s URL still answers {status} after 30 s"
                await asyncio.sleep(0.5)
            gw.gateway.settings = long_ttl
            again = await results.result_view(gw.gateway, job)
            assert again["result_url"] != short
            assert (await plain.get(again["result_url"])).content == b"result v1"

        object_store.delete(key)  # as retention would
        assert await results.result_view(gw.gateway, job) == {
            "result_url": None,
            "result_url_expires_at": None,
            "result_expired": True,
        }


async def test_a_cancellation_goes_out_as_job_failed_with_status_cancelled(
    settings: GatewaySettings, receiver: Receiver
) -> None:
    """Seed 004 names three events (job.started/completed/failed): a cancelled job is job.failed with
    "status": "cancelled" and error code cancelled (docs/CONTRACTS.md), no fourth event name."""
    async with gateway(settings) as (gw, _):
        job_id = await submit(gw, receiver.url + "/cancel")
        await gw.gateway.cancel(job_id)
        await wait_for(lambda: len(receiver.of("/cancel")) >= 1, what="the cancellation's delivery")
    got = receiver.of("/cancel")
    assert [r.headers["x-videobg-event"] for r in got] == ["job.failed"]
    body = json.loads(got[0].body)
    assert body["event"] == "job.failed" and body["status"] == "cancelled" and body["job_id"] == job_id
    assert body["error"]["code"] == "cancelled" and body["result"] is None
