"""Pixelcut (seed 003): `POST /v1/video/remove-background`, poll the `Location` it answers with."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from conformance import media, seeds
from conformance.client import NO_KEY, Reply
from conformance.host import Entry
from conformance.kit import Case, Job, Kit, want_error
from conformance.seeds import Quote

PATH = "/v1/video/remove-background"
DIALECT = "pixelcut"
LIMIT_CODES = ("malformed_image", "unsupported_image_format", "file_size_too_large", "resolution_too_high")
ENUM_400 = (
    "invalid_request_body", "missing_parameter", "invalid_parameter", "unsupported_content_type",
    *LIMIT_CODES, "unknown_foreground",
)  # fmt: skip


def accepted(kit: Kit, c: Case, r: Reply, label: str) -> Job:
    """202 {"job_id"} with Location /v1/video/remove-background/job/{id}; the job is then polled there."""
    c.got(r.short())
    c.expect(r.status == 202)
    job_id = c.need_str(r.obj.get("job_id"), f"{r.short()}: no job_id")
    location = r.headers.get("Location") or ""
    job = kit.track(DIALECT, job_id, location or f"{PATH}/job/{job_id}", label)
    c.expect(location.endswith(f"{PATH}/job/{job_id}"), f"202 job_id {job_id}, Location {location!r}")
    c.got(f"202 job_id {job_id[:8]}…, Location …/job/{job_id[:8]}…")
    return job


def flow_jobs(kit: Kit) -> Iterator[None]:
    defaults = transparent = None
    with kit.case(
        "pixelcut.submit.form",
        seeds.PC_FORM,
        "multipart/form-data with only video_url → 202 {job_id}, Location /v1/video/remove-background/job/{id}",
    ) as c:
        # files= with no file name makes httpx send multipart/form-data (data= alone is urlencoded)
        r = kit.submit(DIALECT, PATH, files={"video_url": (None, kit.source_url)})
        defaults = accepted(kit, c, r, "pixelcut-defaults")
    with kit.case(
        "pixelcut.submit.json",
        (seeds.PC_ACCEPTED, seeds.PC_LOCATION),
        "JSON transparent + webm_vp9 → 202 {job_id} + Location",
    ) as c:
        body = {"video_url": kit.source_url, "background_color": "transparent", "output_format": "webm_vp9"}
        transparent = accepted(kit, c, kit.submit(DIALECT, PATH, json=body), "pixelcut-transparent")
    yield
    # a submit whose answer had the wrong shape may still have made its job: check that too
    defaults = defaults or kit.job("pixelcut-defaults")
    transparent = transparent or kit.job("pixelcut-transparent")
    with kit.case(
        "pixelcut.result.defaults",
        (seeds.PC_DEFAULT_COLOR, seeds.PC_DEFAULT_FORMAT, seeds.PC_MP4),
        "completed; MP4/H.264 at the source size and length; background black",
    ) as c:
        path, info = kit.result_file(defaults, c)
        got = kit.same_picture(info, c)
        c.expect(info.kind == "mp4" and info.video_codec == "h264", f"{got}; not MP4/H.264")
        frame = media.frames(path)[-1]
        edge = media.share_near(media.border(frame), (0, 0, 0))
        c.expect(edge > 0.5, f"{got}; border {edge:.0%} black")
        c.got(f"{got}; border {edge:.0%} black")
    with kit.case(
        "pixelcut.result.transparent",
        (seeds.PC_WEBM_ALPHA,),
        "completed; VP9 WebM at the source size with an alpha channel: subject opaque, background clear",
    ) as c:
        path, info = kit.result_file(transparent, c)
        got = kit.same_picture(info, c)
        c.expect(info.kind == "webm" and info.video_codec in ("vp9", "libvpx-vp9"), f"{got}; not VP9 WebM")
        alpha = np.stack([f[..., 3] for f in media.frames(path, rgba=True, limit=10)])  # [T, H, W]
        opaque, clear = float((alpha > 240).mean()), float((alpha < 16).mean())
        c.expect(opaque > 0.05 and clear > 0.05, f"{got}; alpha {opaque:.0%} opaque, {clear:.0%} clear")
        c.got(f"{got}; alpha {opaque:.0%} opaque, {clear:.0%} clear")


def flow_errors(kit: Kit) -> Iterator[None]:
    src = kit.source_url
    cases: list[tuple[str, Quote, tuple[str, ...], dict[str, Any]]] = [
        ("pixelcut.error.empty_body", seeds.PC_INVALID_BODY, ("invalid_request_body",),
         {"content": b"", "headers": {"Content-Type": "application/json"}}),
        ("pixelcut.error.bad_json", seeds.PC_INVALID_BODY, ("invalid_request_body",),
         {"content": b'{"video_url": ', "headers": {"Content-Type": "application/json"}}),
        ("pixelcut.error.content_type", seeds.PC_CONTENT_TYPE, ("unsupported_content_type",),
         {"content": f"video_url={src}".encode(), "headers": {"Content-Type": "text/plain"}}),
        ("pixelcut.error.missing_video_url", seeds.PC_MISSING, ("missing_parameter",),
         {"json": {"background_color": "#000000"}}),
        ("pixelcut.error.bad_format", seeds.PC_INVALID, ("invalid_parameter",),
         {"json": {"video_url": src, "output_format": "avi"}}),
        ("pixelcut.error.bad_color", seeds.PC_COLOR_PATTERN, ("invalid_parameter",),
         {"json": {"video_url": src, "background_color": "blue"}}),
        ("pixelcut.error.transparent_mp4", seeds.PC_TRANSPARENT_NEEDS, ("invalid_parameter",),
         {"json": {"video_url": src, "background_color": "transparent", "output_format": "mp4_h264"}}),
    ]  # fmt: skip
    for name, quote, codes, kwargs in cases:
        with kit.case(name, quote, f"400 {codes[0]} in {{error, error_code}}") as c:
            want_error(c, kit.submit(DIALECT, PATH, **kwargs), 400, codes, shape="pixelcut")
    with kit.case("pixelcut.auth.missing_key", seeds.PC_401, "no X-API-KEY → 401 invalid_auth_token") as c:
        r = kit.submit(DIALECT, PATH, json={"video_url": src}, key=NO_KEY)
        want_error(c, r, 401, ("invalid_auth_token",), shape="pixelcut")
    with kit.case(
        "pixelcut.auth.bad_key", (seeds.PC_401, seeds.AUTH), "unknown key → 401 invalid_auth_token"
    ) as c:
        r = kit.submit(DIALECT, PATH, json={"video_url": src}, key="sk-conformance-not-a-key")
        want_error(c, r, 401, ("invalid_auth_token",), shape="pixelcut")
    with kit.case(
        "pixelcut.credits.insufficient",
        (seeds.PC_403,),
        "a key without credits → 403 insufficient_api_credits",
    ) as c:
        if not kit.opts.poor_key:
            c.skip("no --poor-key given (a key whose account cannot pay for a job)")
        r = kit.submit(DIALECT, PATH, json={"video_url": src}, key=kit.opts.poor_key)
        want_error(c, r, 403, ("insufficient_api_credits",), shape="pixelcut")
    with kit.case("pixelcut.error.unknown_foreground", seeds.PC_UNKNOWN_FG, "400 unknown_foreground") as c:
        c.skip("no input is documented to trigger it (a clip without a subject is still a valid job)")
    yield


def flow_limits(kit: Kit) -> Iterator[None]:
    """The input limits: each is a 400 of the submit call (the 400 response is "often returned when the
    input image exceeds API limits"). A server that accepts the job and fails it later is reported so."""
    work = kit.opts.work
    clip = media.write_clip(work / "ok.mp4", width=64, height=64, frames=5)
    made = {
        "malformed": (Entry("video/mp4", data=media.MALFORMED), "clip.mp4"),
        "avi": (Entry("video/x-msvideo", path=media.write_clip(
            work / "clip.avi", width=64, height=64, frames=5, codec="mpeg4", fmt="avi")), "clip.avi"),
        "wide": (Entry("video/mp4", path=media.write_clip(
            work / "wide.mp4", width=4160, height=64, frames=2)), "wide.mp4"),
        "tiny": (Entry("video/mp4", path=media.write_clip(
            work / "tiny.mp4", width=48, height=48, frames=5)), "tiny.mp4"),
        "long": (Entry("video/mp4", path=media.write_clip(
            work / "long.mp4", width=64, height=64, frames=62, fps=1)), "long.mp4"),
    }  # fmt: skip
    big = 110 * 1024 * 1024  # over 100 MB however a megabyte is counted
    cases: list[tuple[str, tuple[Quote, ...], str, tuple[str, ...]]] = [
        ("pixelcut.limit.malformed", (seeds.PC_MALFORMED,), "malformed", ("malformed_image",)),
        ("pixelcut.limit.format", (seeds.PC_UNSUPPORTED, seeds.PC_FORMATS), "avi", ("unsupported_image_format",)),
        ("pixelcut.limit.resolution_high", (seeds.PC_TOO_HIGH, seeds.PC_RESOLUTION), "wide", ("resolution_too_high",)),
        ("pixelcut.limit.resolution_low", (seeds.PC_RESOLUTION,), "tiny", ()),
        ("pixelcut.limit.duration", (seeds.PC_MAX_DURATION,), "long", ()),
        ("pixelcut.limit.size", (seeds.PC_TOO_LARGE, seeds.PC_MAX_SIZE), "big", ("file_size_too_large",)),
    ]  # fmt: skip
    pending: list[tuple[str, Job]] = []
    for name, quotes, what, codes in cases:
        want = f"submit → 400 {codes[0] if codes else '(a documented 400 code)'}"
        with kit.case(name, (*quotes, seeds.PC_400_LIMITS) if what != "malformed" else quotes, want) as c:
            url: str | None
            if what == "big":
                if not kit.serving:
                    c.skip("needs the kit's loopback file host (a 110 MB file is not uploaded)")
                assert kit.files is not None
                entry = Entry(
                    "video/mp4",
                    path=clip,
                    pad_to=big,
                    pad_header=media.free_box_header(big, clip.stat().st_size),
                )
                url = kit.files.add("big.mp4", entry, tag=kit.run_tag)
            else:
                entry, filename = made[what]
                url = kit.host(filename, entry)
            if url is None:
                c.skip("the server cannot reach the kit's files (no loopback host, no uploads)")
            r = kit.submit(DIALECT, PATH, json={"video_url": url, "output_format": "mp4_h264"})
            if r.status == 202 and isinstance(r.body, dict) and r.body.get("job_id"):
                job = kit.track(
                    DIALECT,
                    r.body["job_id"],
                    r.headers.get("Location") or f"{PATH}/job/{r.body['job_id']}",
                    name,
                )
                pending.append((name, job))
                c.got("202 (accepted; see the job below)")
                c.expect(False)
            want_error(c, r, 400, codes or ENUM_400, shape="pixelcut")
    yield
    # For a server that accepted a bad input: what its job ended as (reported, these cases already failed).
    for name, job in pending:
        for result in kit.results:
            if result.name == name:
                result.got = f"202, then the job ended {job.describe()} (wanted a 400 at submit)"


# (case, seed line, container, codec, pix_fmt, file name) of the inputs the contract lists
INPUTS = [
    ("mp4_h264", seeds.PC_FORMATS, "mp4", "libx264", "yuv420p", "in.mp4"),
    ("mov_hevc", seeds.PC_CODECS, "mov", "libx265", "yuv420p", "in.mov"),
    ("webm_vp8", seeds.PC_CODECS, "webm", "libvpx", "yuv420p", "in.webm"),
    ("mkv_vp9", seeds.PC_CODECS, "matroska", "libvpx-vp9", "yuv420p", "in_vp9.mkv"),
    ("mkv_av1", seeds.PC_CODECS, "matroska", "libsvtav1", "yuv420p", "in_av1.mkv"),
    ("mov_prores", seeds.PC_CODECS, "mov", "prores_ks", "yuv422p10le", "in_prores.mov"),
    ("gif", seeds.PC_FORMATS, "gif", "gif", "rgb8", "in.gif"),
]
# output_format -> (seed line, container, codecs, transparent?)
OUTPUTS = {
    "mp4_h264": (seeds.PC_MP4, "mp4", ("h264",), False),
    "mp4_h265": (seeds.PC_MP4_H265, "mp4", ("hevc",), False),
    "webm_vp9": (seeds.PC_WEBM_ALPHA, "webm", ("vp9", "libvpx-vp9"), True),
    "mov_h265": (seeds.PC_MOV_H265, "mov", ("hevc",), False),
    "mov_proresks": (seeds.PC_PRORES, "mov", ("prores",), True),
    "mkv_h264": (seeds.PC_MKV_H264, "mkv", ("h264",), False),
    "mkv_h265": (seeds.PC_MKV_H265, "mkv", ("hevc",), False),
    "mkv_vp9": (seeds.PC_MKV_VP9, "mkv", ("vp9", "libvpx-vp9"), False),
    "gif": (seeds.PC_GIF, "gif", ("gif",), True),
}


def flow_formats(kit: Kit) -> Iterator[None]:
    """Every input container/codec and every output format of the contract, on 6-frame 160x112 cuts of
    the sample (the same person, so alpha still has something to show). One job per output format, its
    input taken in turn from the input list: 9 jobs cover both lists."""
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    work = kit.opts.work
    jobs: list[tuple[str, str, Job | None]] = []  # (input name or "", output format, job)
    for i, (fmt, (quote, _, _, alpha)) in enumerate(OUTPUTS.items()):
        name, in_quote, container, codec, pix_fmt, filename = INPUTS[i % len(INPUTS)]
        tested = name if i < len(INPUTS) else ""
        quotes = (quote, in_quote) if tested else (quote,)
        with kit.case(
            f"pixelcut.format.{name}_to_{fmt}", quotes, f"a {name} clip, output_format {fmt} → 202"
        ) as c:
            clip = work / filename
            if not clip.exists():
                media.tiny_clip(kit.opts.sample, clip, codec=codec, fmt=container, pix_fmt=pix_fmt)
            url = kit.host(
                filename, Entry(mimetypes.guess_type(filename)[0] or "video/x-matroska", path=clip)
            )
            if url is None:
                c.skip("the server cannot reach the kit's files (no loopback host, no uploads)")
            body = {
                "video_url": url,
                "output_format": fmt,
                "background_color": "transparent" if alpha else "#1E90FF",
            }
            jobs.append((tested, fmt, accepted(kit, c, kit.submit(DIALECT, PATH, json=body), f"fmt-{fmt}")))
    yield
    for tested, fmt, job in jobs:
        quote, kind, codecs, alpha = OUTPUTS[fmt]
        if tested:
            in_quote = next(q for n, q, *_ in INPUTS if n == tested)
            with kit.case(f"pixelcut.input.{tested}", in_quote, "the job completes at the clip's size") as c:
                _, info = kit.result_file(job, c)
                c.got(info.describe())
                c.expect((info.width, info.height) == media.TINY and abs(info.frames - 6) <= 1)
        want = f"{kind} / {codecs[0]}" + (", with alpha: subject opaque, background clear" if alpha else "")
        with kit.case(f"pixelcut.output.{fmt}", quote, want) as c:
            path, info = kit.result_file(job, c)
            c.got(info.describe())
            c.expect(info.kind == kind and info.video_codec in codecs)
            c.expect((info.width, info.height) == media.TINY, f"{info.describe()}: not {media.TINY}")
            if alpha:
                a = np.stack([f[..., 3] for f in media.frames(path, rgba=True, limit=6)])  # [T, H, W]
                opaque, clear = float((a > 240).mean()), float((a < 16).mean())
                c.got(f"{c.result.got}; alpha {opaque:.0%} opaque, {clear:.0%} clear")
                c.expect(opaque > 0.05 and clear > 0.05)
