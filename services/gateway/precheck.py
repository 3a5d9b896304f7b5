"""Answer at submit what can be known at submit: the source video's size, format and length.

Pixelcut documents `file_size_too_large`, `resolution_too_high`, `unsupported_image_format`,
`malformed_image` and its 60 s limit as 400s of the submit call. Within a small budget
(`submit_probe_s`, default 3 s) the gateway looks at the source before it creates the job:

    uploaded asset (asset://, or our own upload URL)  stat it (size), then read it from S3
    URL                                                a ranged GET (bytes=0..submit_probe_bytes-1)
                                                       through the SSRF guard: the size from
                                                       Content-Range / Content-Length, and the head

    whole file read (it fits in submit_probe_bytes)   probe + validate, exactly as ingest does: every
                                                      verdict is final, and the trimmed duration is
                                                      known (the reservation is made on it)
    only the head read                                refuse only on facts the header states: size,
                                                      codec, resolution, an MP4's stated duration;
                                                      a head that does not parse proves nothing
    budget spent, fetch failed, URL refused by the    undecided: the job is accepted and ingest
    gateway's own guard, server down, ...             decides, as before

The gateway's fetches obey the same SSRF rules as ingest's (services/common/ssrf.py) with the gateway's
`fetch_allow`. A URL the gateway may not fetch is left to ingest (its allow-list is the one that counts
for sources); nothing is refused at submit on a network failure, only on what the bytes show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from services.common.fetch import USER_AGENT, check_url, send_pinned_async
from services.common.objstore import ObjectStore
from services.common.record import JobSpec
from videobg import object_keys
from videobg.errors import InvalidInput, ResolutionTooHigh, TooLarge, Unsupported, VideoBgError
from videobg.media.probe import (
    ACCEPTED_CODECS,
    ACCEPTED_DEMUXERS,
    open_media,
    probe,
    select_video_stream,
    span_seconds,
    validate,
)
from videobg.types import Limits, Trim

log = logging.getLogger(__name__)

_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Probed:
    """What the submit probe learnt. `seconds`: the trimmed span, known only from a whole-file probe."""

    size_bytes: int | None
    complete: bool
    seconds: float | None = None


async def precheck(
    spec: JobSpec,
    objects: ObjectStore,
    limits: Limits,
    *,
    budget_s: float,
    head_bytes: int,
    allow: str = "",
) -> Probed | None:
    """Raise the source's own error (TooLarge, ResolutionTooHigh, Unsupported, MalformedMedia,
    InvalidInput) when the probe proves it; else what was learnt (None: nothing, undecided)."""
    source = spec.source
    if budget_s <= 0 or not source:
        return None
    trim = spec.trim.to_trim()
    with tempfile.TemporaryDirectory(prefix="vbg-submit-probe-") as tmp:
        path = Path(tmp) / "head"
        size: int | None
        try:
            async with asyncio.timeout(budget_s):
                if source.asset_id:
                    size, complete = await _read_asset(objects, source.asset_id, path, head_bytes, limits)
                else:
                    got = await _read_url(source.url, path, head_bytes, limits, allow)
                    if got is None:
                        return None
                    size, complete = got
                return await asyncio.to_thread(_judge, path, size, complete, limits, trim)
        except TimeoutError:
            log.info("submit probe: undecided within %.1f s; ingest will check the source", budget_s)
            return None
        except _Undecided as e:
            log.info("submit probe: undecided (%s); ingest will check the source", e)
            return None


class _Undecided(Exception):
    """The probe could not learn anything it may act on."""


def _judge(path: Path, size: int | None, complete: bool, limits: Limits, trim: Trim) -> Probed:
    if size is not None and size > limits.max_bytes:
        raise TooLarge(f"File is {size / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.1f} MB")
    if complete:
        info = probe(path)  # every error here is the file's own
        validate(info, limits, trim)
        return Probed(info.size_bytes, True, round(span_seconds(info, trim), 3))
    _judge_head(path, limits, trim)
    return Probed(size, False)


def _judge_head(path: Path, limits: Limits, trim: Trim) -> None:
    """Only what a header states (a truncated file proves nothing about being malformed)."""
    try:
        with open_media(path) as container:
            stream = select_video_stream(container)
            ctx = stream.codec_context
            codec = ctx.codec.canonical_name if ctx is not None else ""
            width, height = int(ctx.width or 0) if ctx else 0, int(ctx.height or 0) if ctx else 0
            stated = container.duration / 1e6 if container.duration else None
            mp4 = container.format.name == ACCEPTED_DEMUXERS[0]
    except VideoBgError:
        return
    if codec and codec not in ACCEPTED_CODECS:
        raise Unsupported(
            f"Unsupported video codec {codec!r}: accepted are H.264, H.265, VP8, VP9, AV1, ProRes and GIF"
        )
    if width and height:
        if max(width, height) > limits.max_side:
            raise ResolutionTooHigh(
                f"Resolution {width}x{height} is too high; the longest side may be at most {limits.max_side} px"
            )
        if min(width, height) < limits.min_side:
            raise InvalidInput(
                f"Resolution {width}x{height} is too small; each side must be at least {limits.min_side} px"
            )
    if mp4 and stated is not None:  # the moov atom's duration: what the file says of itself
        end = stated if trim.end is None else min(trim.end, stated)
        span = end - trim.start
        if span > limits.max_duration_s + 1.0:
            what = "The trimmed span" if not trim.is_full else "The video"
            raise InvalidInput(
                f"{what} is {span:.1f} s long; the limit is {limits.max_duration_s:g} s "
                f"(trim it with start/end or send a shorter clip)"
            )


async def _read_asset(
    objects: ObjectStore, asset_id: str, path: Path, head_bytes: int, limits: Limits
) -> tuple[int, bool]:
    try:
        key = object_keys.upload(asset_id)
        stat = await asyncio.to_thread(objects.stat, key)
    except (ValueError, VideoBgError) as e:  # not there (yet): ingest reports it
        raise _Undecided(f"asset {asset_id}: {e}") from None
    if stat.size > limits.max_bytes:
        return stat.size, False  # _judge refuses it; nothing to read
    length = min(stat.size, head_bytes)
    try:
        data = await asyncio.to_thread(objects.get_bytes, key, 0, length)
    except VideoBgError as e:
        raise _Undecided(str(e)) from None
    path.write_bytes(data)
    return stat.size, len(data) >= stat.size


async def _read_url(
    url: str, path: Path, head_bytes: int, limits: Limits, allow: str
) -> tuple[int | None, bool] | None:
    """A ranged GET of the first `head_bytes`, redirects followed by hand through the guard."""
    async with httpx.AsyncClient(
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Range": f"bytes=0-{head_bytes - 1}"},
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as http:
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                target = await asyncio.to_thread(check_url, url, allow, what="source video")
            except VideoBgError as e:  # refused by the gateway's guard, or no DNS: ingest decides
                raise _Undecided(e.message) from None
            try:
                resp = await send_pinned_async(http, "GET", target)
            except httpx.HTTPError as e:
                raise _Undecided(f"{type(e).__name__}") from None
            try:
                if resp.is_redirect and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code not in (200, 206):
                    raise _Undecided(f"HTTP {resp.status_code}")
                total = _total_size(resp)
                if total is not None and total > limits.max_bytes:
                    return total, False
                got = 0
                with open(path, "wb") as f:
                    async for chunk in resp.aiter_bytes():
                        piece = chunk[: head_bytes - got]
                        f.write(piece)
                        got += len(piece)
                        if got >= head_bytes:
                            break
                ended = got < head_bytes  # the server sent everything it had
                complete = (total is not None and got >= total) or (total is None and ended)
                return (total if total is not None else (got if complete else None)), complete
            except httpx.HTTPError as e:
                raise _Undecided(f"{type(e).__name__}") from None
            finally:
                with contextlib.suppress(Exception):
                    await resp.aclose()
    return None


def _total_size(resp: httpx.Response) -> int | None:
    """The whole file's size: Content-Range's total on a 206, Content-Length on a 200."""
    if resp.status_code == 206:
        _, _, total = resp.headers.get("content-range", "").partition("/")
        return int(total) if total.strip().isdigit() else None
    length = resp.headers.get("content-length", "")
    return int(length) if length.isdigit() else None
