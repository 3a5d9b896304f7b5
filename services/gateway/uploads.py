"""Uploads: a file streamed into S3 as an asset that any job can name instead of a URL.

    POST /v1/uploads            multipart/form-data with one part named `file`
        201 {"asset_id", "url": "asset://<asset_id>", "size", "content_type"}, Location /v1/uploads/{id}
        400 file_size_too_large (past `upload_max_bytes`), missing_parameter (no `file` part),
            invalid_parameter (empty file), invalid_request_body, unsupported_content_type
    GET  /v1/uploads/{asset_id}  the same view, to the caller that uploaded it

`asset://<asset_id>` is accepted wherever a dialect takes the URL of a source video or a background
image (video_url, videoUrl, bg_image_url, imageUrl): `assets.source_of` turns it into the job spec's
source (services/gateway/assets.py, which also finds an asset for its owner), and ingest copies
`uploads/{asset_id}` into the job.

Streaming: the body is parsed as it arrives (python-multipart's push parser) and the file's bytes pass
through a small bounded queue to a thread that uploads them in 5 MiB parts, so an upload holds at most
one part and a few request chunks in memory, whatever the file's size. The limit is checked as bytes
arrive: one byte past it the S3 upload is aborted (no object is left) and the request is answered
400 file_size_too_large at once, without reading the rest of the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from services.common.objstore import ObjectStore
from services.gateway.assets import PREFIX, Asset, find_asset, public_base
from services.gateway.deps import CallerDep, GatewayDep
from videobg import object_keys
from videobg.errors import (
    InvalidInput,
    InvalidRequestBody,
    MissingParameter,
    TooLarge,
    Transient,
    VideoBgError,
)

log = logging.getLogger(__name__)

FILE_FIELD = "file"
_QUEUE_CHUNKS = 16  # request chunks (<= 64 KiB each from uvicorn) waiting for the S3 thread
_SERVE_CHUNK = 1024 * 1024  # GET .../content reads S3 this much at a time
_MAX_OTHER_BYTES = 64 * 1024  # form fields besides `file` are ignored, but bounded
_MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers a Content-Length counts besides the file
_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
router = APIRouter(tags=["uploads"])


_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(PREFIX, status_code=201, openapi_extra=_OPENAPI)
async def create_upload(request: Request, gw: GatewayDep, caller: CallerDep) -> JSONResponse:
    settings = gw.settings
    max_bytes = int(settings.upload_max_bytes)
    boundary = _boundary(request)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + _MULTIPART_OVERHEAD:
        raise _too_large(max_bytes)
    asset_id = str(uuid.uuid4())
    receiver = _Receiver(gw.objects, object_keys.upload(asset_id), max_bytes, owner=caller.owner)
    try:
        async with asyncio.timeout(settings.upload_timeout_s):
            await receiver.receive(request, boundary)
    except TimeoutError:
        raise InvalidRequestBody(f"The upload took longer than {settings.upload_timeout_s:g} s") from None
    except ClientDisconnect:
        raise InvalidRequestBody("The client went away during the upload") from None
    asset = Asset(asset_id, receiver.size, receiver.content_type, caller.owner, receiver.filename)
    log.info("upload %s: %d bytes (%s) by %s", asset_id, asset.size, asset.content_type, caller.owner)
    view = asset.view(public_base(request, settings.public_url))
    return JSONResponse(view, status_code=201, headers={"Location": f"{PREFIX}/{asset_id}"})


@router.get(PREFIX + "/{asset_id}")
async def get_upload(asset_id: str, request: Request, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    asset = await find_asset(gw.objects, asset_id, caller)
    return asset.view(public_base(request, gw.settings.public_url))


@router.get(PREFIX + "/{asset_id}/content")
async def get_upload_content(asset_id: str, gw: GatewayDep, caller: CallerDep) -> StreamingResponse:
    """The uploaded bytes, to the uploader (404 to anyone else with a key), streamed from S3 in 1 MiB
    ranged reads so a 100 MB asset never sits in memory."""
    asset = await find_asset(gw.objects, asset_id, caller)
    key = object_keys.upload(asset_id)

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(0, asset.size, _SERVE_CHUNK):
            length = min(_SERVE_CHUNK, asset.size - offset)
            yield await asyncio.to_thread(gw.objects.get_bytes, key, offset, length)

    headers = {"Content-Length": str(asset.size)}
    return StreamingResponse(chunks(), media_type=asset.content_type, headers=headers)


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"The file is larger than the upload limit of {max_bytes / 1e6:.1f} MB")


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data":
        raise VideoBgError(
            "Send the file as multipart/form-data, in a part named 'file'", code="unsupported_content_type"
        )
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise InvalidRequestBody("The multipart/form-data Content-Type has no valid boundary")
    return boundary


# --- streaming ------------------------------------------------------------------------------------------


class _Parts:
    """python-multipart callbacks -> the bytes of the part named `file`, in order, as they are found."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []  # file bytes parsed since the last take()
        self.in_file = False
        self.seen_file = False
        self.ended = False
        self.filename = ""
        self.content_type = ""
        self._headers: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._other = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add("_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take(self) -> list[bytes]:
        out, self.pending = self.pending, []
        return out

    def _add(self, name: str, data: bytes) -> None:
        setattr(self, name, getattr(self, name) + bytes(data))

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, disposition = parse_options_header(self._headers.get("content-disposition", ""))
        if disposition.get(b"name", b"").decode("utf-8", "replace") != FILE_FIELD:
            return
        if self.seen_file:
            raise InvalidRequestBody("Send one file per upload")
        self.in_file = self.seen_file = True
        self.filename = disposition.get(b"filename", b"").decode("utf-8", "replace")[:255]
        declared = self._headers.get("content-type", "").split(";", 1)[0].strip().lower()
        guessed = mimetypes.guess_type(self.filename)[0] if self.filename else None
        if _CONTENT_TYPE.fullmatch(declared) and declared != "application/octet-stream":
            self.content_type = declared
        else:
            self.content_type = guessed or "application/octet-stream"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.append(bytes(data[start:end]))
            return
        self._other += end - start
        if self._other > _MAX_OTHER_BYTES:
            raise InvalidRequestBody(
                f"Form fields besides '{FILE_FIELD}' are limited to {_MAX_OTHER_BYTES} bytes"
            )

    def _part_end(self) -> None:
        self.in_file = False

    def _end(self) -> None:
        self.ended = True


class _Aborted(Exception):
    """Raised into the S3 thread's read: makes minio abort the upload."""


class _Pipe:
    """Bytes from the event loop to the thread running `ObjectStore.put_stream`, which reads them with
    blocking `read(n)` calls; a bounded asyncio queue in between gives the request its back-pressure."""

    def __init__(self, loop: asyncio.AbstractEventLoop, idle_timeout_s: float) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_CHUNKS)
        self._rest = b""
        self._eof = False
        self._aborted = False
        self._idle_timeout_s = idle_timeout_s

    # event-loop side
    async def put(self, item: bytes | None, upload: asyncio.Future[str]) -> None:
        """Queue `item` (None: end of file); raise what the upload raised if it stopped meanwhile."""
        if not self._queue.full():
            self._queue.put_nowait(item)
            return
        waiting: asyncio.Future[Any] = asyncio.ensure_future(self._queue.put(item))
        pending: list[asyncio.Future[Any]] = [waiting, upload]
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            upload.result()  # raises its error
            raise Transient("the upload to the object store stopped early")

    def abort(self) -> None:
        self._aborted = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wakes a reader waiting on an empty queue

    # thread side
    def read(self, n: int = -1) -> bytes:
        out = bytearray(self._rest)
        self._rest = b""
        while (n < 0 or len(out) < n) and not self._eof:
            item = self._get()
            if item is None:
                self._eof = True
            else:
                out += item
        if 0 <= n < len(out):
            self._rest = bytes(out[n:])
            del out[n:]
        return bytes(out)

    def _get(self) -> bytes | None:
        if self._aborted:
            raise _Aborted
        future = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop)
        try:
            item = future.result(timeout=self._idle_timeout_s)
        except TimeoutError:
            future.cancel()
            raise _Aborted from None
        if self._aborted:
            raise _Aborted
        return item


class _Receiver:
    """One upload: parse the body, count, and feed the S3 thread; on any failure leave no object."""

    def __init__(self, objects: ObjectStore, key: str, max_bytes: int, *, owner: str) -> None:
        self.objects = objects
        self.key = key
        self.max_bytes = max_bytes
        self.owner = owner
        self.size = 0
        self.content_type = ""
        self.filename = ""

    async def receive(self, request: Request, boundary: bytes) -> None:
        parts = _Parts()
        parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
        pipe = _Pipe(asyncio.get_running_loop(), idle_timeout_s=300.0)
        upload: asyncio.Future[str] | None = None
        try:
            async for chunk in request.stream():
                try:
                    parser.write(chunk)
                except MultipartParseError as e:
                    raise InvalidRequestBody(f"The multipart body could not be parsed: {e}") from None
                for piece in parts.take():
                    self.size += len(piece)
                    if self.size > self.max_bytes:
                        raise _too_large(self.max_bytes)
                    if upload is None:
                        upload = self._start(pipe, parts)
                    await pipe.put(piece, upload)
                if parts.ended:
                    break
            if not parts.ended:
                raise InvalidRequestBody("The multipart body ended before its closing boundary")
            if not parts.seen_file:
                raise MissingParameter(f"Send the file as a multipart/form-data part named '{FILE_FIELD}'")
            if upload is None:
                raise InvalidInput("The file is empty")
            await pipe.put(None, upload)
            await upload
        except BaseException:
            if upload is not None:
                await asyncio.shield(self._discard(pipe, upload))
            raise

    def _start(self, pipe: _Pipe, parts: _Parts) -> asyncio.Future[str]:
        self.content_type, self.filename = parts.content_type, parts.filename
        metadata = {"owner": quote(self.owner, safe=""), "filename": quote(self.filename, safe="")}
        return asyncio.ensure_future(
            asyncio.to_thread(self.objects.put_stream, self.key, pipe, self.content_type, metadata=metadata)  # type: ignore[arg-type]
        )

    async def _discard(self, pipe: _Pipe, upload: asyncio.Future[str]) -> None:
        pipe.abort()
        with contextlib.suppress(BaseException):
            await upload  # minio aborts its multipart upload before this returns
        try:
            await asyncio.to_thread(self.objects.delete, self.key)  # in case the last part had gone out
        except Exception as e:
            log.warning("could not delete aborted upload %s: %r", self.key, e)
