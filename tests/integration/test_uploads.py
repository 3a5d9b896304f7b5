"""POST /v1/uploads against a real S3 server (SeaweedFS), through the gateway in-process on port 0.

A real clip lands as uploads/{asset_id} with its size; past the limit the request is refused with 400
file_size_too_large and no object is left, and the refusal comes while the body is still streaming
(a raw-socket client keeps sending a 256 MiB chunked body and counts what it got out before the answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.common.objstore import ObjectStore
from services.common.record import SourceRef
from services.gateway import assets
from services.gateway.server import RunningGateway, running
from services.gateway.settings import GatewaySettings
from tests.integration.conftest import S3_ACCESS_KEY, S3_SECRET_KEY
from videobg import object_keys

pytestmark = pytest.mark.integration

CLIP = "people/androidx_bt601.mov"
MiB = 1024 * 1024


def gateway_settings(nats_url: str, s3_endpoint: str, store: ObjectStore, **kw) -> GatewaySettings:
    base = dict(
        nats_url=nats_url,
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=store.bucket,
        http_port=0,
        grpc_port=0,
        auth_required=False,  # the anonymous owner: no API keys in these tests
        webhooks_enabled=False,
    )
    return GatewaySettings(**(base | kw))


@contextlib.asynccontextmanager
async def gateway(settings: GatewaySettings) -> AsyncIterator[tuple[RunningGateway, httpx.AsyncClient]]:
    async with (
        running(settings) as gw,
        httpx.AsyncClient(base_url=gw.url, trust_env=False, timeout=30) as http,
    ):
        yield gw, http


def uploaded(store: ObjectStore) -> set[str]:
    return set(store.list_keys("uploads/"))


async def test_upload_real_clip(nats_url, s3_endpoint, object_store, media: Path) -> None:
    clip = media / CLIP
    data = clip.read_bytes()
    async with gateway(gateway_settings(nats_url, s3_endpoint, object_store)) as (_, http):
        r = await http.post("/v1/uploads", files={"file": (clip.name, data, "video/quicktime")})
        assert r.status_code == 201, r.text
        body = r.json()
        asset_id = body["asset_id"]
        assert body == {
            "asset_id": asset_id,
            "url": f"{str(http.base_url).rstrip('/')}/v1/uploads/{asset_id}/content",
            "asset_url": f"asset://{asset_id}",
            "size": len(data),
            "content_type": "video/quicktime",
        }
        assert r.headers["location"] == f"/v1/uploads/{asset_id}"
        stat = object_store.stat(object_keys.upload(asset_id))
        assert stat.size == len(data) and stat.content_type == "video/quicktime"
        assert stat.metadata["owner"] == "anonymous"
        assert object_store.get_bytes(object_keys.upload(asset_id)) == data

        assert (await http.get(f"/v1/uploads/{asset_id}")).json() == body
        assert (await http.get("/v1/uploads/no-such-asset")).status_code == 404
        # what the dialects put into a job spec for it
        assert assets.source_of(body["asset_url"], "video_url") == SourceRef(asset_id=asset_id)
        # the http URL serves the bytes (to the uploader)
        assert (await http.get(body["url"])).content == data


async def test_upload_in_parts_streamed(nats_url, s3_endpoint, object_store) -> None:
    """A 64 MiB chunked body goes to S3 as a multipart upload; the gateway's Python allocations stay far
    below the file's size (tracemalloc peak over the whole request, client included)."""
    size = 64 * MiB
    block = bytes(range(256)) * 256  # 64 KiB
    boundary = "vbgtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // len(block)):
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    async with gateway(gateway_settings(nats_url, s3_endpoint, object_store)) as (_, http):
        tracemalloc.start()
        try:
            r = await http.post(
                "/v1/uploads",
                content=body(),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["size"] == size and got["content_type"] == "application/octet-stream"
        assert object_store.stat(object_keys.upload(got["asset_id"])).size == size
        assert peak < size / 2, f"peak {peak / MiB:.1f} MiB for a {size / MiB:.0f} MiB upload"


async def test_over_limit_is_refused_and_leaves_nothing(nats_url, s3_endpoint, object_store, media) -> None:
    data = (media / CLIP).read_bytes()  # 142751 bytes
    before = uploaded(object_store)
    # 100 kB: the declared length is within limit + multipart overhead, so the streamed count decides;
    # 10 kB: the declared Content-Length alone is enough to refuse
    for limit in (100_000, 10_000):
        settings = gateway_settings(nats_url, s3_endpoint, object_store, upload_max_bytes=limit)
        async with gateway(settings) as (_, http):
            r = await http.post("/v1/uploads", files={"file": ("clip.mov", data, "video/quicktime")})
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "file_size_too_large"
    assert uploaded(object_store) == before


async def test_bad_uploads(nats_url, s3_endpoint, object_store) -> None:
    before = uploaded(object_store)
    async with gateway(gateway_settings(nats_url, s3_endpoint, object_store)) as (_, http):
        cases = [
            ({"content": b"raw bytes", "headers": {"content-type": "video/mp4"}}, "unsupported_content_type"),
            ({"files": {"other": ("a.mov", b"xyz")}}, "missing_parameter"),
            ({"files": {"file": ("empty.mov", b"")}}, "invalid_parameter"),
            ({"content": b"--x\r\nnot a part", "headers": {"content-type": "multipart/form-data; boundary=x"}},
             "invalid_request_body"),
            ({"content": b"data", "headers": {"content-type": "multipart/form-data"}}, "invalid_request_body"),
        ]  # fmt: skip
        for kwargs, code in cases:
            r = await http.post("/v1/uploads", **kwargs)
            assert r.status_code == 400, (kwargs, r.text)
            assert r.json()["error_code"] == code, (kwargs, r.json())
    assert uploaded(object_store) == before


@pytest.mark.parametrize("limit", [1 * MiB, 12 * MiB])  # within the first S3 part; after two parts went out
async def test_refused_while_streaming(nats_url, s3_endpoint, object_store, limit: int) -> None:
    """A client streaming 256 MiB (chunked, no Content-Length) gets its 400 soon after the limit: the
    server does not read the body to its end first. The client stops sending when the answer comes."""
    total = 256 * MiB
    block = b"\x5a" * (64 * 1024)
    before = uploaded(object_store)
    settings = gateway_settings(nats_url, s3_endpoint, object_store, upload_max_bytes=limit)
    async with running(settings) as gw:
        reader, writer = await asyncio.open_connection(gw.host, gw.http_port)
        answered = asyncio.Event()

        async def read_response() -> tuple[int, dict]:
            status_line = await reader.readline()
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
            answered.set()
            return int(status_line.split()[1]), json.loads(body)

        response = asyncio.create_task(read_response())
        writer.write(
            b"POST /v1/uploads HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b0undary\r\n\r\n"
        )
        head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="x.bin"\r\n\r\n'
        writer.write(b"%x\r\n%s\r\n" % (len(head), head))
        sent = 0
        try:
            while sent < total and not answered.is_set():
                writer.write(b"%x\r\n%s\r\n" % (len(block), block))
                sent += len(block)
                await writer.drain()
                await asyncio.sleep(0)  # the server runs in this event loop
        except ConnectionError:
            pass  # the server may close first; the answer was still sent
        status, body = await asyncio.wait_for(response, 10)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert status == 400 and body["error_code"] == "file_size_too_large", body
    assert sent < limit + 32 * MiB, f"the client got {sent / MiB:.0f} MiB out before the answer"
    assert uploaded(object_store) == before
