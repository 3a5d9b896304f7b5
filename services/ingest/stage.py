"""The ingest stage of one job: bring the input into the job's prefix, probe it, check it, queue matting.

    record before: status queued, spec (services/common/record.py)
    record after:  status processing, stage ingest, progress 5, info, source_key, background_key (image
                   backgrounds), billed_seconds, frames_total, stage_seconds.ingest
    S3:            jobs/{id}/source{ext} (+ jobs/{id}/background{ext})
    NATS:          vbg.work.segment {job_id}, msg id {job_id}:segment

Idempotent: a redelivery of a job already ingested republishes the segment work (deduplicated by its
msg id) and does nothing else. Bad input (undecodable, too large, too long, bad trim) fails the job with
the error's public code.
"""

from __future__ import annotations

import mimetypes
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from pydantic_settings import SettingsConfigDict

from services.common.fetch import fetch_to_file
from services.common.jobrun import StageRun
from services.common.objstore import ObjectStore
from services.common.record import PROGRESS_PLAN, Job, MediaInfo, SourceRef, Status
from services.common.settings import StageSettings
from services.common.ssrf import AllowSetting
from videobg import nats_subjects, object_keys
from videobg.composite import load_image_rgb
from videobg.errors import InvalidInput, NotFound, TooLarge, Transient
from videobg.media import stills
from videobg.media.probe import ACCEPTED_DEMUXERS, probe, span_seconds, validate
from videobg.pipeline import expected_frames
from videobg.types import Limits, Trim, VideoInfo

PROGRESS_DONE = PROGRESS_PLAN["ingest"][1]

# probed container -> extension of jobs/{id}/source (the demuxer is auto-detected, the name is cosmetic)
_SOURCE_EXT = {ACCEPTED_DEMUXERS[0]: ".mp4", ACCEPTED_DEMUXERS[1]: ".mkv", ACCEPTED_DEMUXERS[2]: ".gif"}


class IngestSettings(StageSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_INGEST_", extra="ignore")

    # downloads wait on the network, not the CPU: several jobs at once, so a slow source delays only its own
    concurrency: int = 4
    fetch_timeout_s: float = 300.0  # a URL download may take at most this long (within the stage deadline)
    # and must bring this many bytes/s over every window of fetch_rate_window_s (a trickling server is cut
    # off, not waited for; services/common/fetch.py)
    fetch_min_rate_bytes_s: float = 64 * 1024
    fetch_rate_window_s: float = 20.0  # the window fetch_min_rate_bytes_s is measured over
    max_image_bytes: int = 25 * 1024 * 1024  # background images
    # CIDRs and host names URL fetches may reach although not public (services/common/ssrf.py), e.g.
    # "127.0.0.0/8,::1/128" for a local stack serving clips on loopback; "" admits public addresses only
    fetch_allow: AllowSetting = ""


@dataclass
class IngestResult:
    source_key: str
    info: MediaInfo
    billed_seconds: float


def billed_seconds(info: VideoInfo, trim: Trim) -> float:
    """The validated span (probe measures it from the packets, not from the uploader's header); decoding
    in the later stages stops at it (`frame_budget`)."""
    return round(span_seconds(info, trim), 3)


def ingest(run: StageRun, settings: IngestSettings) -> IngestResult:
    job = run.require(Status.QUEUED, Status.PROCESSING, ingested=False)
    if job.info is not None and job.source_key and run.store.exists(job.source_key):
        run.log.info("already ingested; republishing the segment work")
        if job.status == Status.PROCESSING:
            run.publish_work(nats_subjects.WORK_SEGMENT, "segment")
        return IngestResult(job.source_key, job.info, job.billed_seconds or 0.0)
    run.deps.call(
        run.deps.jobs.transition(run.job_id, {Status.QUEUED}, Status.PROCESSING, stage="ingest", progress=1)
    )
    run.event(progress=1)

    spec = job.spec
    trim = spec.trim.to_trim()
    limits = settings.core.limits()
    with run.scratch() as tmp:
        src = _bring(run, settings, spec.source, tmp / "source", limits.max_bytes, "source video")
        run.check()
        info = probe(src)
        validate(info, limits, trim)
        source_key = object_keys.source(run.job_id, _SOURCE_EXT.get(info.container, ".bin"))
        run.store.put_file(source_key, src, content_type=mimetypes.guess_type(source_key)[0] or "video/mp4")
        background_key = ""
        if spec.background.kind == "image":
            img = _bring(
                run, settings, spec.background.image, tmp / "background", settings.max_image_bytes,
                "background image",
            )  # fmt: skip
            load_image_rgb(img)  # MalformedMedia now rather than in the compositor
            background_key = object_keys.background(run.job_id, _image_ext(img))
            run.store.put_file(background_key, img)

    result = IngestResult(source_key, MediaInfo.of(info), billed_seconds(info, trim))
    _check_probed_reservation(job, result.billed_seconds)
    frames_total = expected_frames(info, trim)
    run.set(
        info=result.info, source_key=source_key, background_key=background_key,
        billed_seconds=result.billed_seconds, frames_total=frames_total, stage="ingest",
        progress=PROGRESS_DONE, done=True,
    )  # fmt: skip
    run.publish_work(nats_subjects.WORK_SEGMENT, "segment")
    run.event(progress=PROGRESS_DONE, frames_done=0, frames_total=frames_total)
    run.log.info(
        "ingested %dx%d %.2f s (%d frames, billed %.2f s) in %.2f s",
        info.width, info.height, info.duration_s, frames_total, result.billed_seconds, run.elapsed,
    )  # fmt: skip
    return result


def _check_probed_reservation(job: Job, seconds: float) -> None:
    """The gateway reserved credits on the length its submit probe measured (services/gateway/precheck.py).
    A URL that now serves a longer video than it did then would be charged past what was held: refused,
    the client submits it again and is reserved for what it is now."""
    billing = job.billing
    if billing is None or billing.basis != "probed":
        return
    reserved = billing.reserved_seconds
    if seconds > reserved + 1.0:
        raise InvalidInput(
            f"The source video changed since it was submitted ({reserved:.1f} s then, {seconds:.1f} s now): "
            f"submit it again"
        )


def _bring(
    run: StageRun, settings: IngestSettings, source: SourceRef | None, dest: Path, max_bytes: int, what: str
) -> Path:
    """A URL or an uploaded asset -> a local file at `dest`."""
    if source and source.url:
        timeout = min(settings.fetch_timeout_s, max(run.remaining, 1.0))
        return fetch_to_file(
            source.url,
            dest,
            max_bytes=max_bytes,
            timeout_s=timeout,
            min_rate_bytes_s=settings.fetch_min_rate_bytes_s,
            rate_window_s=settings.fetch_rate_window_s,
            what=what,
            allow=settings.fetch_allow,
        ).path
    if source and source.asset_id:
        job = run.job()
        # A metered job (made with a key) may use only its owner's uploads; an unmetered one comes from
        # a trusted caller (auth off, or the operator's internal gRPC listener).
        owner = job.owner if job.key_id else None
        return copy_asset(run.store, source.asset_id, dest, max_bytes, what, owner=owner)
    raise InvalidInput(f"the job names no {what} (URL or uploaded asset)")


def copy_asset(
    store: ObjectStore, asset_id: str, dest: Path, max_bytes: int, what: str, *, owner: str | None = None
) -> Path:
    """`uploads/{asset_id}` -> `dest`. With an `owner`, the upload must be theirs (the uploader is kept
    in the object's metadata, services/gateway/uploads.py): another owner's reads as not found."""
    try:
        key = object_keys.upload(asset_id)
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    try:
        stat = store.stat(key)
    except NotFound:
        raise NotFound(f"uploaded asset {asset_id} ({what}) not found") from None
    if owner is not None and unquote(stat.metadata.get("owner", "")) != owner:
        raise NotFound(f"uploaded asset {asset_id} ({what}) not found")
    size = stat.size
    if size > max_bytes:
        raise TooLarge(f"The {what} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB")
    return store.get_file(key, dest)


def _image_ext(path: Path) -> str:
    """.png, .jpg or .webp from the header (load_image_rgb has refused anything else)."""
    with open(path, "rb") as f:
        return stills.read_header(f.read()).extension  # a JPEG size may follow 64 KiB of EXIF


def probe_object(store: ObjectStore, key: str, work_dir: str, limits: Limits) -> VideoInfo:
    """Probe an object already in S3 (no job): download to scratch, probe."""
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise InvalidInput(f"bad object key {key!r}")
    with tempfile.TemporaryDirectory(prefix="vbg-probe-", dir=work_dir or None) as d:
        try:
            size = store.stat(key).size
        except NotFound:
            raise NotFound(f"object {key} not found") from None
        if size > limits.max_bytes:
            raise TooLarge(f"{key} is {size / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.1f} MB")
        path = store.get_file(key, Path(d) / "object")
        if not path.exists():
            raise Transient(f"download of {key} vanished")
        return probe(path)
