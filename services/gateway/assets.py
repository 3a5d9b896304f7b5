"""Uploaded assets: how a dialect's URL field names one (`asset://<id>`, this gateway's own upload URL,
or for studio-background a bare id), and finding one in S3 for its owner. The REST routes that create and
serve them are services/gateway/uploads.py; Gateway.create checks a job's assets through here.

The object (`uploads/{asset_id}`, videobg/object_keys.py) keeps its uploader as user metadata (`owner`);
`find_asset` hides another owner's upload.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi import Request

from services.common.objstore import ObjectStore
from services.common.record import SourceRef
from services.gateway.caller import Caller
from videobg import object_keys
from videobg.errors import InvalidInput, NotFound

PREFIX = "/v1/uploads"
ASSET_SCHEME = "asset://"


@dataclass(frozen=True)
class Asset:
    asset_id: str
    size: int  # bytes
    content_type: str
    owner: str
    filename: str = ""

    def view(self, base: str) -> dict[str, Any]:
        """`url`: an http(s) URL of the asset on this gateway, to pass as video_url / videoUrl /
        bg_image_url / imageUrl (or GET, with the uploader's key); `asset_url`: the same as asset://."""
        return {
            "asset_id": self.asset_id,
            "url": base + content_path(self.asset_id),
            "asset_url": asset_url(self.asset_id),
            "size": self.size,
            "content_type": self.content_type,
        }


def asset_url(asset_id: str) -> str:
    return ASSET_SCHEME + asset_id


def content_path(asset_id: str) -> str:
    return f"{PREFIX}/{asset_id}/content"


# The hosts (netloc) this gateway answers on for the current request: its Host header and the configured
# public_url. A URL of ours (`http(s)://<one of them>/v1/uploads/<id>/content`) names the asset itself;
# `bind_self` sets it per request (an app-wide dependency), so `source_of` needs no request argument.
_SELF_HOSTS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "vbg_self_hosts", default=frozenset()
)
_CONTENT_PATH = re.compile(rf"^{PREFIX}/([A-Za-z0-9][A-Za-z0-9_-]{{0,127}})/content$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _netloc(scheme: str, netloc: str) -> str:
    netloc = netloc.lower().rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}.get(scheme.lower(), "")
    return netloc.removesuffix(default) if default else netloc


def public_base(request: Request, public_url: str) -> str:
    """The base of the URLs this gateway hands out: `public_url` when set (behind a proxy), else the
    URL the client called."""
    return (public_url or str(request.base_url)).rstrip("/")


async def bind_self(request: Request) -> None:
    """App-wide dependency: remember which hosts are this gateway for `source_of`."""
    hosts = {_netloc(request.url.scheme, request.headers.get("host", ""))}
    public_url = getattr(request.app.state.gateway.settings, "public_url", "")
    if public_url:
        parts = urlsplit(public_url)
        hosts.add(_netloc(parts.scheme, parts.netloc))
    _SELF_HOSTS.set(frozenset(h for h in hosts if h))


def source_of(value: Any, name: str, *, bare_ids: bool = False) -> SourceRef:
    """A dialect's URL parameter -> the job spec's source (or background image): {"asset_id": id} for
    `asset://<id>`, for this gateway's own upload URL (`POST /v1/uploads` hands it out) and, with
    `bare_ids` (studio-background's "URL or asset ID"), for a bare upload id; {"url": url} for any other
    http(s) URL; InvalidInput (naming `name`) for anything else."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    text = value.strip()
    if text[: len(ASSET_SCHEME)].lower() == ASSET_SCHEME:
        asset_id = text[len(ASSET_SCHEME) :]
        try:
            return SourceRef(asset_id=object_keys.check_id("asset id", asset_id))
        except ValueError:
            raise InvalidInput(f"{name}: {text!r} is not a valid asset URL") from None
    if bare_ids and _UUID.match(text):
        return SourceRef(asset_id=text.lower())
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        ours = _CONTENT_PATH.match(parts.path)
        if ours and not parts.query and _netloc(parts.scheme, parts.netloc) in _SELF_HOSTS.get():
            return SourceRef(asset_id=ours.group(1))  # read from S3 by ingest: never fetched over HTTP
        return SourceRef(url=text)
    also = ", or an upload's asset id" if bare_ids else ""
    raise InvalidInput(f"{name} must be an http(s) URL, or an asset:// URL from POST {PREFIX}{also}")


async def find_asset(objects: ObjectStore, asset_id: str, caller: Caller | None = None) -> Asset:
    """The uploaded asset; NotFound when there is none, or (for a caller with a key) it is not theirs."""
    try:
        key = object_keys.upload(asset_id)
    except ValueError:
        raise NotFound(f"asset {asset_id} not found") from None
    try:
        stat = await asyncio.to_thread(objects.stat, key)
    except NotFound:
        raise NotFound(f"asset {asset_id} not found") from None
    owner = unquote(stat.metadata.get("owner", ""))
    if caller is not None and not caller.anonymous and owner != caller.owner:
        raise NotFound(f"asset {asset_id} not found")
    return Asset(
        asset_id=asset_id,
        size=stat.size,
        content_type=stat.content_type or "application/octet-stream",
        owner=owner,
        filename=unquote(stat.metadata.get("filename", "")),
    )


# --- routes ---------------------------------------------------------------------------------------------
