"""Abuse of the public gateway: oversized streamed bodies, failed-authentication floods, draft floods.

Each test runs the real gateway in-process (REST on a free port) on the session's NATS and S3.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from services.common.objstore import ObjectStore
from tests.integration import gatewaykit

pytestmark = [pytest.mark.security, pytest.mark.integration]

JSON_CT = gatewaykit.JSON_CT
CHUNK = 64 * 1024


def send_chunked_until_answered(port: int, path: str, max_total: int) -> tuple[int, bytes]:
    """POST a chunked JSON body of up to `max_total` bytes, a chunk at a time, stopping as soon as the
    server answers (or hangs up). Returns (bytes of body sent, the start of the answer)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
        sock.setblocking(False)
        answer = b""
        while sent < max_total:
            try:
                answer = sock.recv(65536)
                break  # an answer (or b"": the server closed)
            except BlockingIOError:
                pass
            try:
                sock.sendall(chunk)
            except BlockingIOError:
                time.sleep(0.01)  # the server is not reading: see whether it answered
                continue
            except OSError:
                break  # reset: it answered and closed
            sent += CHUNK
        sock.setblocking(True)
        sock.settimeout(10)
        while b"}" not in answer:  # the JSON error body, however the answer was split into reads
            try:
                more = sock.recv(65536)
            except OSError:
                break
            if not more:
                break
            answer += more
    return sent, answer


async def test_chunked_oversized_body_is_refused_while_it_streams(
    nats_url: str, s3_endpoint: str, object_store: ObjectStore
) -> None:
    cap = 256 * 1024
    settings = gatewaykit.server_settings(
        nats_url, s3_endpoint, object_store, auth_required=False, max_body_bytes=cap, webhooks_enabled=False
    )
    async with gatewaykit.gateway(settings) as (gw, _):
        sent, answer = await asyncio.to_thread(
            send_chunked_until_answered, gw.http_port, "/v1/jobs", 256 * 1024 * 1024
        )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    # the cap plus what the kernel's socket buffers hold, far from the 256 MiB offered
    assert sent < 64 * 1024 * 1024, sent
    assert json.loads(body)["error"]["code"] == "invalid_request_body", body  # removebgvideo shape


async def test_failed_auth_flood_is_rate_limited_per_address(
    nats_url: str, s3_endpoint: str, object_store: ObjectStore
) -> None:
    """Past the burst of failures, an address gets 429 for everything, a right key included (no oracle);
    another address is not affected."""
    settings = gatewaykit.settings_for(
        nats_url, s3_endpoint, object_store, auth_failures_burst=5, auth_failures_per_s=0.001
    )
    async with gatewaykit.gateway(settings) as (gw, http):
        _, good = await gatewaykit.tenant(gw)
        bad = {"X-API-Key": "vbg_000000000000_" + "x" * 40}
        codes = [(await http.get("/v1/usage", headers=bad)).status_code for _ in range(8)]
        assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3, codes
        refused = await http.get("/v1/usage", headers=good)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=gw.url, transport=other, trust_env=False) as elsewhere:
            assert (await elsewhere.get("/v1/usage", headers=good)).status_code == 200
            assert (await elsewhere.get("/v1/usage", headers=bad)).status_code == 401
