"""studio-background (seed 000): `POST /v1/proxy/studio-background`, poll `GET /v2/jobs/{job_id}`.

The seed documents no error codes or shapes for this service: its error cases check the HTTP status and
report the code the server gave.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from conformance import media, seeds
from conformance.client import NO_KEY, Reply
from conformance.kit import Case, Job, Kit, want_error

PATH = "/v1/proxy/studio-background"
DIALECT = "studio"
TRIM = (0.2, 0.8)  # seconds of the sample kept by the trimmed job


def accepted(kit: Kit, c: Case, r: Reply, label: str) -> Job:
    """202 {"status": "accepted", "message": "Job queued for processing", "job": {"id", "status": "queued",
    "service": "studio-background"}}; the job is polled at /v2/jobs/{id}."""
    c.got(r.short())
    c.expect(r.status in (200, 201, 202))
    body = r.obj
    job: dict[str, Any] = body["job"] if isinstance(body.get("job"), dict) else {}
    job_id = c.need_str(job.get("id"), f"{r.short()}: no job.id")
    tracked = kit.track(DIALECT, job_id, f"/v2/jobs/{job_id}", label)
    shape = (body.get("status"), body.get("message"), job.get("status"), job.get("service"))
    c.expect(
        shape == ("accepted", "Job queued for processing", "queued", "studio-background"),
        f"{r.status} status {shape[0]!r}, message {shape[1]!r}, job.status {shape[2]!r}, job.service {shape[3]!r}",
    )
    c.got(f"{r.status} accepted, job {job_id[:8]}… queued")
    return tracked


def completed_view(c: Case, job: Job | None) -> dict[str, Any]:
    """The poll body's job object of a job that completed (the case fails when it did not)."""
    c.expect(job is not None and job.status == "completed", "no completed job")
    assert job is not None
    return job.body.get("job", job.body) if isinstance(job.body, dict) else {}


def flow_jobs(kit: Kit) -> Iterator[None]:
    hexed = white = asset = None
    start, end = TRIM
    with kit.case(
        "studio.submit.hex_trim",
        (seeds.STUDIO_FIELDS, seeds.STUDIO_ACCEPTED),
        f'videoUrl + back_ground "#1E90FF" + start {start} / end {end} → accepted, job queued',
    ) as c:
        body = {"videoUrl": kit.source_url, "back_ground": "#1E90FF", "start": start, "end": end}
        hexed = accepted(kit, c, kit.submit(DIALECT, PATH, json=body), "studio-hex")
    with kit.case(
        "studio.submit.remove_hhmmss",
        (seeds.STUDIO_WHITE, seeds.STUDIO_TRIM),
        'videoUrl only, start "00:00:00" / end "00:00:01" → accepted',
    ) as c:
        body = {"videoUrl": kit.source_url, "start": "00:00:00", "end": "00:00:01"}
        white = accepted(kit, c, kit.submit(DIALECT, PATH, json=body), "studio-white")
    with kit.case(
        "studio.submit.asset_id",
        seeds.STUDIO_ASSET,
        "videoUrl = the bare id of an uploaded asset → accepted, and the job completes",
    ) as c:
        up = kit.uploaded.get("sample")
        asset_id = (up or {}).get("asset_id") or (up or {}).get("id")
        if not asset_id:
            c.skip("no uploaded asset (the upload failed or the server has no upload endpoint)")
        body = {"videoUrl": asset_id, "back_ground": "#000000", "end": 0.3}
        asset = accepted(kit, c, kit.submit(DIALECT, PATH, json=body), "studio-asset")
    yield
    # a submit whose answer had the wrong shape may still have made its job: check that too
    hexed = hexed or kit.job("studio-hex")
    white = white or kit.job("studio-white")
    asset = asset or kit.job("studio-asset")
    with kit.case(
        "studio.result.format",
        (seeds.STUDIO_RESULT, seeds.STUDIO_OUTPUT),
        "completed, result URL; one MP4 with H.264 video and AAC audio",
    ) as c:
        _, info = kit.result_file(hexed, c)
        c.got(info.describe())
        c.expect(info.kind == "mp4" and info.video_codec == "h264" and info.audio_codec == "aac")
    with kit.case(
        "studio.result.size_trim",
        (seeds.STUDIO_SIZE, seeds.STUDIO_TRIM),
        f"the source's size; {end - start:.1f} s long (the trimmed span), audio kept",
    ) as c:
        _, info = kit.result_file(hexed, c)
        got = kit.same_picture(info, c, duration_s=end - start)
        c.expect(info.audio_codec is not None or kit.source.audio_codec is None, f"{got}; audio lost")
    with kit.case("studio.result.hex", seeds.STUDIO_HEX, "background #1E90FF around the subject") as c:
        path, _ = kit.result_file(hexed, c)
        frame = media.frames(path)[-1]
        edge, whole = (
            media.share_near(media.border(frame), (30, 144, 255)),
            media.share_near(frame, (30, 144, 255)),
        )
        c.got(f"border {edge:.0%} #1E90FF, whole frame {whole:.0%}")
        c.expect(edge > 0.5 and whole < 0.98)
    with kit.case("studio.billing.trimmed", seeds.STUDIO_BILLED, f"billed_seconds {end - start:.1f}") as c:
        view = completed_view(c, hexed)
        billed = view.get("billed_seconds")
        if billed is None:
            c.skip("the job body reports no billed_seconds")
        c.got(f"billed_seconds {billed}")
        c.expect(abs(float(billed) - (end - start)) <= 0.1)
    with kit.case(
        "studio.billing.price",
        seeds.STUDIO_PRICE,
        f"the job's price: $0.06 x {end - start:.1f} s = ${0.06 * (end - start):.3f}",
    ) as c:
        view = completed_view(c, hexed)
        price = view.get("price")
        if price is None:
            c.skip("the job body reports no price")
        amount = price.get("amount") if isinstance(price, dict) else price
        c.got(f"price {price}")
        c.expect(isinstance(amount, int | float) and abs(amount - 0.06 * (end - start)) <= 0.01)
    with kit.case(
        "studio.result.remove", seeds.STUDIO_WHITE, "subject over white; 1.0 s (hh:mm:ss trim)"
    ) as c:
        path, info = kit.result_file(white, c)
        got = kit.same_picture(info, c, duration_s=min(1.0, kit.source.duration_s))
        frame = media.frames(path)[-1]
        edge = media.share_near(media.border(frame), (255, 255, 255))
        c.got(f"{got}; border {edge:.0%} white")
        c.expect(edge > 0.5)
    with kit.case("studio.result.asset_id", seeds.STUDIO_ASSET, "the job from an asset id completes") as c:
        _, info = kit.result_file(asset, c, after="studio.submit.asset_id")
        c.got(info.describe())


def flow_errors(kit: Kit) -> Iterator[None]:
    src = kit.source_url
    cases = [
        ("studio.error.missing_videoUrl", seeds.STUDIO_FIELDS, {"video_url": src}),
        ("studio.error.both_backgrounds", seeds.STUDIO_EITHER,
         {"videoUrl": src, "back_ground": "#1E90FF", "imageUrl": src}),
        ("studio.error.bad_hex", seeds.STUDIO_HEX, {"videoUrl": src, "back_ground": "#12345G"}),
        ("studio.error.bad_trim", seeds.STUDIO_TRIM, {"videoUrl": src, "start": "soon"}),
    ]  # fmt: skip
    for name, quote, body in cases:
        with kit.case(name, quote, "400 with an error code") as c:
            want_error(c, kit.submit(DIALECT, PATH, json=body), 400)
    for name, key, headers in (
        ("studio.auth.missing_key", NO_KEY, {}),
        ("studio.auth.bad_key", "sk-conformance-not-a-key", {}),
        ("studio.auth.bad_bearer", NO_KEY, {"Authorization": "Bearer sk-conformance-not-a-key"}),
    ):
        with kit.case(name, seeds.AUTH, "401") as c:
            r = kit.submit(DIALECT, PATH, json={"videoUrl": src}, key=key, headers=headers)
            want_error(c, r, 401)
    with kit.case("studio.credits.insufficient", seeds.INSUFFICIENT, "a key without credits → 403") as c:
        if not kit.opts.poor_key:
            c.skip("no --poor-key given (a key whose account cannot pay for a job)")
        want_error(c, kit.submit(DIALECT, PATH, json={"videoUrl": src}, key=kit.opts.poor_key), 403)
    yield
