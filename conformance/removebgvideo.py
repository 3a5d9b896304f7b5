"""removebgvideo (seeds 001, 002, 004): `POST /v1/jobs` (and `/api/process`), drafts and
`POST /v1/jobs/{id}/start`, `GET /v1/jobs/{id}`, webhooks, uploads, idempotency, request ids.

The seeds document no error codes or shapes for this service: its error cases check the HTTP status and
report the code the server gave.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from conformance import media, seeds
from conformance.client import NO_KEY, Reply
from conformance.host import Delivery, Entry
from conformance.kit import Case, Job, Kit, want_error
from conformance.seeds import Quote

DIALECT = "removebgvideo"
WEBHOOK_WAIT_S = 60.0  # after the job ended, for its last callback to arrive


def created(
    kit: Kit, c: Case, r: Reply, label: str, status: str = "processing", *, track: bool = True
) -> Job:
    """2xx {"success": true, "id", "status", "message"}; polled at /v1/jobs/{id} when `track`."""
    c.got(r.short())
    c.expect(200 <= r.status < 300)
    body = r.obj
    job_id = c.need_str(body.get("id"), f"{r.short()}: no id")
    job = (
        kit.track(DIALECT, job_id, f"/v1/jobs/{job_id}", label)
        if track
        else Job(DIALECT, job_id, f"/v1/jobs/{job_id}", label)
    )
    got = f"{r.status} success {body.get('success')!r}, status {body.get('status')!r}, id {job_id[:8]}…"
    c.expect(body.get("success") is True and isinstance(body.get("message"), str), got)
    c.expect(body.get("status") == status, f"{got} (wanted {status})")
    c.got(got)
    return job


def flow_jobs(kit: Kit) -> Iterator[None]:
    core = image = mp4 = None
    hooks = kit.hooks
    with kit.case(
        "removebgvideo.submit.core",
        (seeds.RBV_CORE, seeds.RBV_CREATED, seeds.RBV_STATUS),
        "the guide's payload (+ webhook_url) → 2xx {success: true, id, status: processing, message}",
    ) as c:
        body: dict[str, Any] = {
            "video_url": kit.source_url,
            "output_format": "webm",
            "bg_type": "transparent",
            "model": kit.opts.model,
        }
        if hooks is not None:
            body["webhook_url"] = hooks.url
        core = created(kit, c, kit.submit(DIALECT, "/v1/jobs", json=body), "rbv-core")
    with kit.case(
        "removebgvideo.draft.image",
        (seeds.RBV_IMAGE_JOB, seeds.RBV_AUTO_START, seeds.RBV_VIDEO_URL),
        "video and image URLs from uploads, bg_type image, auto_start false → status draft",
    ) as c:
        video_url, image_url = kit.upload_url_of("sample") or kit.source_url, kit.image_url
        if not image_url:
            c.skip("no background image: neither an upload (see uploads.image) nor --image-url")
        body = {
            "video_url": video_url,
            "bg_type": "image",
            "bg_image_url": image_url,
            "output_format": "mp4",
            "model": kit.opts.model,
            "auto_start": False,
        }
        image = created(kit, c, kit.submit(DIALECT, "/v1/jobs", json=body), "rbv-image", status="draft")
    with kit.case(
        "removebgvideo.draft.start",
        (seeds.RBV_DRAFT, seeds.RBV_START_POLL),
        "POST /v1/jobs/{id}/start → 2xx, status processing",
    ) as c:
        if image is None:
            c.skip("no draft (see removebgvideo.draft.image)")
        assert image is not None
        r = kit.api.post(f"/v1/jobs/{image.id}/start", dialect=DIALECT)
        body = r.body if isinstance(r.body, dict) else {}
        c.got(f"{r.status} status {body.get('status')!r}")
        c.expect(200 <= r.status < 300 and body.get("status") == "processing")
    with kit.case(
        "removebgvideo.policy.mp4_default_bg",
        (seeds.RBV_FORMAT_POLICY, seeds.RBV_BG_DEFAULT),
        "output_format mp4 with the default bg_type → accepted and processed over a background the job reports",
    ) as c:
        body = {"video_url": kit.source_url, "output_format": "mp4", "model": kit.opts.model}
        mp4 = created(kit, c, kit.submit(DIALECT, "/v1/jobs", json=body), "rbv-mp4")
    yield
    # a submit whose answer had the wrong shape may still have made its job: check that too
    core = core or kit.job("rbv-core")
    image = image or kit.job("rbv-image")
    mp4 = mp4 or kit.job("rbv-mp4")
    with kit.case(
        "removebgvideo.result.core",
        (seeds.RBV_FORMAT_DEFAULT, seeds.RBV_BG_TYPE),
        "completed; webm with an alpha channel at the source size and length",
    ) as c:
        path, info = kit.result_file(core, c)
        got = kit.same_picture(info, c)
        c.expect(info.kind == "webm" and info.video_codec in ("vp9", "libvpx-vp9", "vp8"), f"{got}; not WebM")
        alpha = np.stack([f[..., 3] for f in media.frames(path, rgba=True, limit=10)])  # [T, H, W]
        opaque, clear = float((alpha > 240).mean()), float((alpha < 16).mean())
        c.got(f"{got}; alpha {opaque:.0%} opaque, {clear:.0%} clear")
        c.expect(opaque > 0.05 and clear > 0.05)
    with kit.case(
        "removebgvideo.result.image",
        (seeds.RBV_START_POLL, seeds.UPLOAD_URL),
        "completed; MP4 at the source size; the background changed to a picture (border differs, not flat)",
    ) as c:
        path, info = kit.result_file(image, c, after="removebgvideo.draft.image")
        got = kit.same_picture(info, c)
        out = media.border(media.frames(path)[-1]).astype(np.float32)
        src = media.border(media.frames(kit.opts.sample, limit=info.frames)[-1]).astype(np.float32)
        diff, spread = float(np.abs(out - src).mean()), float(out.std(axis=0).mean())
        c.got(f"{got}; border Δ {diff:.0f} from the source, spread {spread:.0f}")
        c.expect(diff > 20 and spread > 10)
    with kit.case(
        "removebgvideo.result.mp4_default_bg",
        seeds.RBV_FORMAT_POLICY,
        "completed; MP4/H.264; the job body names the background applied (not transparent)",
    ) as c:
        _, info = kit.result_file(mp4, c)
        assert mp4 is not None
        background = mp4.body.get("background") if isinstance(mp4.body, dict) else None
        c.expect(info.kind == "mp4" and info.video_codec == "h264", info.describe())
        kind = background.get("type") if isinstance(background, dict) else background
        c.expect(bool(kind) and kind != "transparent", f"{info.describe()}; background {background!r}")
        c.got(f"{info.describe()}; background {background}")
    with kit.case(
        "removebgvideo.webhook.completed",
        seeds.RBV_WEBHOOK,
        "job.started then job.completed POSTed to webhook_url, for this job",
    ) as c:
        if hooks is None:
            c.skip(kit.webhook_skip_reason)
        c.expect(core is not None and core.status == "completed", "no completed job")
        assert core is not None
        done = hooks.wait_event(core.id, "job.completed", WEBHOOK_WAIT_S)
        events = [d.json.get("event") for d in hooks.for_job(core.id)]
        c.expect(done is not None and "job.started" in events, f"events {events}")
        c.got(f"events {events}; {verify_signature(kit, done)}")
    with kit.case("removebgvideo.webhook.failed", seeds.RBV_WEBHOOK, "a failing job → job.failed") as c:
        failing = kit.extra.get("failing")
        if hooks is None:
            c.skip(kit.webhook_skip_reason)
        if failing is None:
            c.skip(kit.extra.get("failing_reason", "no failing job"))
        assert failing is not None
        c.expect(failing.status == "failed", f"job {failing.describe()}")
        event = hooks.wait_event(failing.id, "job.failed", WEBHOOK_WAIT_S)
        events = [d.json.get("event") for d in hooks.for_job(failing.id)]
        c.expect(event is not None, f"events {events}")
        c.got(f"job failed ({failing.error}); events {events}")


def verify_signature(kit: Kit, delivery: Delivery | None) -> str:
    """Check the signature if the server tells its secret (`GET /v1/webhooks/secret`, not a seed route)."""
    if delivery is None:
        return "no delivery"
    r = kit.api.get("/v1/webhooks/secret")
    secret = r.body.get("secret") if r.status == 200 and isinstance(r.body, dict) else None
    stamp, header = delivery.headers.get("x-videobg-timestamp"), delivery.headers.get("x-videobg-signature")
    if not secret or not stamp or not header:
        return "signature not checked (no secret endpoint or headers)"
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + delivery.body, hashlib.sha256).hexdigest()
    ok = any(
        hmac.compare_digest(mac, p.strip()[3:]) for p in header.split(",") if p.strip().startswith("v1=")
    )
    if not ok:
        raise AssertionError("webhook signature does not verify")
    return "signature verified"


def flow_drafts(kit: Kit) -> Iterator[None]:
    """Cheap cases: drafts are created and read, never started."""
    src = kit.source_url
    draft = None
    with kit.case(
        "removebgvideo.draft.nested",
        (seeds.RBV_NESTED, seeds.RBV_AUTO_START),
        'the reference\'s curl body with "background": {"type": "transparent"}, auto_start false → draft',
    ) as c:
        body: dict[str, Any] = {
            "video_url": src,
            "model": "original",
            "background": {"type": "transparent"},
            "output_format": "webm",
        }
        r = kit.submit(DIALECT, "/v1/jobs", json={**body, "auto_start": False})
        draft = created(kit, c, r, "rbv-draft", "draft", track=False)  # read below, never started
    with kit.case("removebgvideo.auth.valid", seeds.AUTH, "GET /v1/jobs/{id} with the key → 200") as c:
        c.expect(draft is not None, "no draft to read")
        assert draft is not None
        r = kit.api.get(draft.poll, dialect=DIALECT)
        c.expect(r.status == 200 and isinstance(r.body, dict) and r.body.get("status") == "draft", r.short())
        c.got(f"200 status {r.body.get('status')!r}")
    with kit.case("removebgvideo.auth.bad_key", seeds.AUTH, "the same call with an unknown key → 401") as c:
        c.expect(draft is not None, "no draft to read")
        assert draft is not None
        want_error(c, kit.api.get(draft.poll, dialect=DIALECT, key="sk-conformance-not-a-key"), 401)
    with kit.case("removebgvideo.auth.missing_key", seeds.AUTH, "POST /v1/jobs without a key → 401") as c:
        want_error(c, kit.submit(DIALECT, "/v1/jobs", json={"video_url": src}, key=NO_KEY), 401)
    with kit.case(
        "removebgvideo.legacy.api_process", seeds.RBV_LEGACY, "POST /api/process → the same answer"
    ) as c:
        body = {
            "video_url": src,
            "bg_type": "green",
            "output_format": "mp4",
            "auto_start": False,
        }
        created(kit, c, kit.submit(DIALECT, "/api/process", json=body), "rbv-legacy", "draft", track=False)
    for name, quote, field, values in ENUMS:
        with kit.case(name, quote, f"a draft for each {field}: {', '.join(values)} → 2xx, draft") as c:
            refused = []
            for value in values:
                fields = enum_body(kit, field, value)
                if fields is None:
                    c.skip(f"{field} {value} needs a background image URL (see uploads.image)")
                r = kit.submit(DIALECT, "/v1/jobs", json={**fields, "auto_start": False})
                ok = 200 <= r.status < 300 and isinstance(r.body, dict) and r.body.get("status") == "draft"
                if not ok:
                    refused.append(f"{value}: {r.short()}")
            c.got("; ".join(refused) if refused else f"{len(values)} drafts")
            c.expect(not refused)
    with kit.case(
        "removebgvideo.idempotency.key",
        seeds.IDEMPOTENCY,
        "the same body twice with one Idempotency-Key → one job (same id)",
    ) as c:
        body = {"video_url": src, "bg_type": "black", "output_format": "mp4", "auto_start": False}
        headers = {"Idempotency-Key": f"kit-{uuid.uuid4()}"}
        ids = [kit.submit(DIALECT, "/v1/jobs", json=body, headers=headers) for _ in range(2)]
        got = [r.body.get("id") if isinstance(r.body, dict) else r.short() for r in ids]
        c.expect(all(200 <= r.status < 300 for r in ids) and got[0] == got[1], f"ids {got}")
        c.got(f"same id twice; replay header {ids[1].headers.get('Idempotent-Replayed')!r}")
    with kit.case(
        "removebgvideo.idempotency.retry",
        seeds.IDEMPOTENCY,
        "the same body sent again without a key (a retry after a timeout) → the same job, not a second one",
    ) as c:
        body = {"video_url": f"{src}{'&' if '?' in src else '?'}retry={uuid.uuid4().hex[:8]}",
                "bg_type": "blue", "output_format": "mp4", "auto_start": False}  # fmt: skip
        ids = [kit.submit(DIALECT, "/v1/jobs", json=body, idempotent=False) for _ in range(2)]
        got = [r.body.get("id") if isinstance(r.body, dict) else r.short() for r in ids]
        c.expect(all(200 <= r.status < 300 for r in ids) and got[0] == got[1], f"ids {got}")
        c.got("same id twice")
    with kit.case(
        "removebgvideo.observability.request_id",
        seeds.OBSERVABILITY,
        "X-Request-Id sent → echoed; none sent → one given",
    ) as c:
        c.expect(draft is not None, "no draft to read")
        assert draft is not None
        rid = f"kit-{uuid.uuid4().hex[:12]}"
        echoed = kit.api.get(draft.poll, dialect=DIALECT, headers={"X-Request-Id": rid}).headers.get(
            "X-Request-Id"
        )
        fresh = kit.api.get(draft.poll, dialect=DIALECT).headers.get("X-Request-Id")
        c.expect(echoed == rid and bool(fresh), f"echoed {echoed!r}, fresh {fresh!r}")
        c.got("echoed; a fresh one when none was sent")
    yield


# The enumerations of seeds 001 and 004, each value sent once as a draft (drafts cost nothing to run).
ENUMS: list[tuple[str, Quote | tuple[Quote, ...], str, tuple[str, ...]]] = [
    ("removebgvideo.enum.model", seeds.RBV_MODEL, "model", ("original", "light", "pro", "human")),
    ("removebgvideo.enum.bg_type", (seeds.RBV_BG_DEFAULT, seeds.RBV_BG_TYPE), "bg_type",
     ("transparent", "green", "white", "black", "blue", "custom", "color", "image")),
    ("removebgvideo.enum.output_format", (seeds.RBV_FORMAT_DEFAULT, seeds.RBV_FORMAT), "output_format",
     ("webm", "mov", "mp4", "gif", "webp", "png_sequence")),
]  # fmt: skip


def enum_body(kit: Kit, field: str, value: str) -> dict[str, Any] | None:
    """A valid body that sets `field` to `value` (None when it needs an image URL there is none of)."""
    body: dict[str, Any] = {"video_url": kit.source_url, field: value}
    if field == "bg_type" and value in ("custom", "color"):
        body["bg_color"] = [0, 177, 64]
    if field == "bg_type" and value == "image":
        if not kit.image_url:
            return None
        body["bg_image_url"] = kit.image_url
    if field == "output_format":
        body["bg_type"] = "green"  # a background every format can carry: the format alone is checked
    return body


def flow_errors(kit: Kit) -> Iterator[None]:
    src = kit.source_url
    cases: list[tuple[str, Any, dict[str, Any]]] = [
        ("removebgvideo.error.missing_video_url", seeds.RBV_VIDEO_URL, {"json": {"model": "original"}}),
        ("removebgvideo.error.bad_model", seeds.RBV_MODEL_DEFAULT, {"json": {"video_url": src, "model": "ultra"}}),
        ("removebgvideo.error.bad_format", seeds.RBV_FORMAT, {"json": {"video_url": src, "output_format": "avi"}}),
        ("removebgvideo.error.bad_bg_type", seeds.RBV_BG_DEFAULT, {"json": {"video_url": src, "bg_type": "purple"}}),
        ("removebgvideo.error.bad_bg_color", seeds.RBV_BG_COLOR,
         {"json": {"video_url": src, "bg_type": "custom", "bg_color": [300, 0, 0], "output_format": "mp4"}}),
        ("removebgvideo.error.bad_json", seeds.RBV_VIDEO_URL,
         {"content": b'{"video_url": ', "headers": {"Content-Type": "application/json"}}),
    ]  # fmt: skip
    for name, quote, kwargs in cases:
        with kit.case(name, quote, "400 with an error code") as c:
            want_error(c, kit.submit(DIALECT, "/v1/jobs", **kwargs), 400)
    with kit.case(
        "removebgvideo.credits.insufficient", seeds.RBV_CREDIT_PATHS, "a key without credits → 403"
    ) as c:
        if not kit.opts.poor_key:
            c.skip("no --poor-key given (a key whose account cannot pay for a job)")
        r = kit.submit(
            DIALECT, "/v1/jobs", json={"video_url": src, "output_format": "webm"}, key=kit.opts.poor_key
        )
        want_error(c, r, 403)
    # A job that fails after it was accepted, for the job.failed callback: a file that is not a video. A
    # server that probes the URL at submit refuses it there instead (then there is no job to fail).
    if kit.hooks is not None:
        url = kit.host("broken.webm", Entry("video/webm", data=media.MALFORMED))
        body = {"video_url": url, "output_format": "webm", "webhook_url": kit.hooks.url}
        r = kit.submit(DIALECT, "/v1/jobs", json=body)
        if url is None:
            kit.extra["failing_reason"] = "the server cannot reach the kit's files"
        elif 200 <= r.status < 300 and isinstance(r.body, dict) and r.body.get("id"):
            kit.extra["failing"] = kit.track(DIALECT, r.body["id"], f"/v1/jobs/{r.body['id']}", "rbv-failing")
        else:
            kit.extra["failing_reason"] = (
                f"a broken source is refused at submit ({r.short()}): no job to fail"
            )
    yield


def flow_rate(kit: Kit) -> Iterator[None]:
    """Burst one status route per dialect until a 429; check its shape and Retry-After, wait that long, and
    confirm the same call then succeeds. Runs last: it spends the key's request budget."""
    yield
    job = next((j for j in kit.jobs if j.status), None)
    routes = {
        "pixelcut": ("pixelcut", "/v1/video/remove-background/job/{id}"),
        "studio": ("studio", "/v2/jobs/{id}"),
        "removebgvideo": ("removebgvideo", "/v1/jobs/{id}"),
    }
    for name, (dialect, route) in routes.items():
        quotes = (seeds.RATE, seeds.PC_429) if dialect == "pixelcut" else (seeds.RATE,)
        with kit.case(
            f"{name}.rate.burst", quotes, "a burst → 429 with Retry-After; after waiting it, 2xx"
        ) as c:
            path = route.format(id=job.id if job else uuid.uuid4())
            limited = burst(kit, dialect, path)
            c.expect(limited is not None, "no 429 after 400 requests")
            assert limited is not None
            r, sent = limited
            want_error(c, r, 429, ("rate_limit_exceeded",) if dialect == "pixelcut" else (),
                       shape="pixelcut" if dialect == "pixelcut" else "any")  # fmt: skip
            wait = r.headers.get("Retry-After")
            c.expect(wait is not None and wait.strip().isdigit(), f"429 after {sent}; Retry-After {wait!r}")
            assert wait is not None
            time.sleep(float(wait) + 0.2)
            again = kit.api.get(path, dialect=dialect, retry_429=False)
            c.expect(again.status != 429, f"429 after {sent} requests; after {wait} s: {again.short()}")
            c.got(f"429 after {sent} requests, Retry-After {wait} s; then {again.status}")


def burst(kit: Kit, dialect: str, path: str, wave: int = 40, most: int = 400) -> tuple[Reply, int] | None:
    """Send waves of concurrent GETs until one answers 429: (that reply, requests sent), or None."""
    sent = 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        while sent < most:
            replies = list(
                pool.map(lambda _: kit.api.get(path, dialect=dialect, retry_429=False), range(wave))
            )
            sent += wave
            for r in replies:
                if r.status == 429:
                    return r, sent
    return None
