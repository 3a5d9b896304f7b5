"""The job record and the job spec: the one typed definition every service reads and writes.

A record lives in the JetStream KV bucket `vbg_jobs` as JSON (services/common/jobstore.py loads and saves
it through `Job`); every process reads it by attribute, so searching for a field's name finds each place
that writes or reads it. Who writes what:

    gateway   id, owner, dialect, key_id, spec, status (draft|queued), stage, model, request_fingerprint,
              request_id, submit_probe, billing, credits (settling), status cancelled, deleted
    ingest    status processing, info, source_key, background_key, billed_seconds, frames_total
    segment   weights, matte, processed_seconds
    encode    status completed, result_key, result_size, result_mime, frames, audio
    any stage status failed with error_code / error; progress (PROGRESS_PLAN); stage_seconds[stage]
    webhooks  webhook
    retention result_expired

Records written before this module (plain dicts) still load: unknown fields are dropped, the old
`timings` map is read as `stage_seconds`, and fields that only repeated the spec (`input`, `format`,
`background`) are ignored.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from fractions import Fraction
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from videobg.errors import InvalidInput, MissingParameter, Transient
from videobg.media.formats import DEFAULT_FORMAT, get_format
from videobg.types import AudioInfo, Background, Trim, VideoInfo


class Status(StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
FAILABLE = frozenset({Status.DRAFT, Status.QUEUED, Status.PROCESSING})  # states a stage may move to failed

# Which share of the job's 0..100 each stage owns. Matting and encoding run at the same time (the encoder
# trails the segmenter frame by frame); each reports its own span, and the record keeps the larger value.
PROGRESS_PLAN: dict[str, tuple[float, float]] = {
    "ingest": (0.0, 5.0),
    "segment": (5.0, 50.0),
    "encode": (5.0, 100.0),
}


def progress_of(stage: str, done: int, total: int) -> float:
    """The job's overall progress when `stage` has done `done` of `total` units (frames)."""
    start, end = PROGRESS_PLAN[stage]
    return start + (end - start) * done / max(total, done, 1)


class _Model(BaseModel):
    # extra="ignore": a record written by an older (or newer) version still loads
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        # older records (and dialects) wrote null for "not set": the field's default says that
        if value is None and info.field_name is not None:
            field = cls.model_fields[info.field_name]
            if not field.is_required():
                return field.get_default(call_default_factory=True)
        return value


# --- the spec -----------------------------------------------------------------------------------------


class SourceRef(_Model):
    """Where a video or image comes from: an http(s) URL or an uploaded asset id (exactly one is set).
    Stored as {"url": ...} or {"asset_id": ...}, the shape records have always had."""

    url: str = ""
    asset_id: str = ""

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v}

    def __bool__(self) -> bool:
        return bool(self.url or self.asset_id)


class TrimSpec(_Model):
    start: float = 0.0  # seconds
    end: float | None = None  # seconds; None: to the end

    def to_trim(self) -> Trim:
        return Trim(float(self.start), None if self.end is None else float(self.end))


BackgroundKind = Literal["white", "color", "image", "transparent"]


class BackgroundSpec(_Model):
    kind: BackgroundKind = "white"
    rgb: tuple[int, int, int] = (255, 255, 255)  # for kind color
    image: SourceRef | None = None  # for kind image
    defaulted: str = ""  # why the output format policy chose this background (the client named none)

    @property
    def transparent(self) -> bool:
        return self.kind == "transparent"

    def to_background(self, image_path: str | None = None) -> Background:
        """The core Background; an image background needs the local path the stage downloaded it to."""
        if self.kind == "color":
            return Background(kind="color", rgb=self.rgb)
        if self.kind == "image":
            return Background(kind="image", image_path=image_path)
        return Background(kind=self.kind)


class JobSpec(_Model):
    """What was asked for, whatever the dialect: every dialect and the gRPC API build one of these."""

    source: SourceRef | None = None
    trim: TrimSpec = Field(default_factory=TrimSpec)
    model: str = ""  # "" -> the service's default model
    background: BackgroundSpec = Field(default_factory=BackgroundSpec)
    output_format: str = DEFAULT_FORMAT  # our format names (mp4_h264, webm_vp9, ...)
    webhook_url: str = ""
    text_prompt: str = ""
    owner: str = ""
    dialect: str = ""

    def validated(self) -> JobSpec:
        """Checks that do not need the video: fail fast at submit time, with the public error codes."""
        if not self.source:
            raise MissingParameter("a source video (URL or uploaded asset) is required")
        if self.background.kind == "image" and not self.background.image:
            raise MissingParameter("an image background needs an image URL or asset")
        get_format(self.output_format or DEFAULT_FORMAT, transparent=self.background.transparent)
        start, end = self.trim.start, self.trim.end
        if start < 0 or (end is not None and end <= start):
            raise InvalidInput("trim: end must be after start, and start must not be negative")
        return self


# --- what the stages learn --------------------------------------------------------------------------


class AudioRecord(_Model):
    index: int
    codec: str
    channels: int
    sample_rate: int
    layout: str


class MediaInfo(_Model):
    """The source's probe (videobg.types.VideoInfo) as stored: ingest probes once, every later stage
    reads it from here instead of probing again. Frame rates are kept exactly ("30000/1001"); older
    records hold floats, which still load."""

    container: str = ""
    size_bytes: int = 0
    duration_s: float = 0.0
    width: int = 0
    height: int = 0
    coded_width: int = 0
    coded_height: int = 0
    rotation: int = 0
    fps_nominal: Fraction = Fraction(0)
    fps_avg: Fraction = Fraction(0)
    frame_count: int = 0
    video_codec: str = ""
    pix_fmt: str = ""
    bit_depth: int = 0
    has_alpha: bool = False
    audio: list[AudioRecord] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _float_rates(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in ("fps_nominal", "fps_avg"):
                if isinstance(data.get(name), float):
                    data = {**data, name: Fraction(data[name]).limit_denominator(100_000)}
        return data

    @classmethod
    def of(cls, info: VideoInfo) -> MediaInfo:
        return cls.model_validate(
            {**dataclasses.asdict(info), "audio": [dataclasses.asdict(a) for a in info.audio]}
        )

    def video_info(self) -> VideoInfo:
        fields = {name: getattr(self, name) for name in type(self).model_fields if name != "audio"}
        audio = tuple(AudioInfo(**a.model_dump()) for a in self.audio)
        return VideoInfo(**fields, audio=audio)


class SubmitProbe(_Model):
    """What the gateway's submit probe learnt of the source (services/gateway/precheck.py)."""

    size_bytes: int | None = None
    whole_file: bool = False
    seconds: float | None = None  # the trimmed length, when the whole file was read


class MatteSummary(_Model):
    chunks: int = 0
    frames: int = 0
    model: str = ""


BillingState = Literal["estimated", "reserved", "charged", "released"]
ReserveBasis = Literal["worst_case", "trim", "probed"]  # what the reservation was sized from


class BillingRecord(_Model):
    """A metered job's credits (services/gateway/credits.py): estimated (a draft: checked, nothing held)
    -> reserved -> charged | released."""

    state: BillingState = "estimated"
    basis: ReserveBasis = "worst_case"
    account: str = ""
    model: str = ""
    credits_per_minute: float = 0.0
    reserved_seconds: float = 0.0
    reserved_milli: int = 0
    charged_milli: int = 0
    billed_seconds: float | None = None


class WebhookDelivery(_Model):
    """One webhook event's delivery (services/gateway/webhooks/dispatch.py)."""

    delivery_id: str = ""
    seq: int | None = None  # the event message (stream sequence) that owns the delivery
    attempts: int = 0
    last_status: int | None = None
    last_error: str = ""
    last_attempt_at: str = ""
    delivered: bool = False
    delivered_at: str = ""
    gave_up: bool = False

    @property
    def finished(self) -> bool:
        return self.delivered or self.gave_up


class WebhookState(_Model):
    event: str = ""  # the latest attempted event and how it went
    attempts: int = 0
    last_status: int | None = None
    delivered: bool = False
    events: dict[str, WebhookDelivery] = Field(default_factory=dict)


# --- the record -----------------------------------------------------------------------------------------


class Job(_Model):
    id: str
    owner: str = ""
    dialect: str = ""
    key_id: str | None = None  # the API key that submitted it (metered callers)
    spec: JobSpec = Field(default_factory=JobSpec)
    status: Status = Status.QUEUED
    progress: float = 0.0  # 0..100, only grows (PROGRESS_PLAN)
    stage: str = ""  # ingest | segment | encode | done
    model: str = ""  # the model that runs it (spec.model or the default)
    request_fingerprint: str = ""  # Idempotency-Key replays compare it
    request_id: str = ""  # the submit's X-Request-Id: every stage's log lines carry it
    submit_probe: SubmitProbe | None = None
    created: str = ""  # ISO-8601 UTC
    updated: str = ""
    error_code: str = ""
    error: str = ""
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    # ingest
    info: MediaInfo | None = None
    source_key: str = ""
    background_key: str = ""
    billed_seconds: float | None = None
    frames_total: int = 0
    # segment
    # the weight files the segmenter's session loaded, "+"-joined ("u2netp", "u2net",
    # "rvm_mobilenetv3+u2netp"): `model` names the product, this what ran; "" until matting starts
    weights: str = ""
    matte: MatteSummary | None = None
    processed_seconds: float = 0.0  # source span matted so far: what a job cancelled now is billed for
    # encode
    result_key: str = ""
    result_size: int = 0
    result_mime: str = ""
    result_expired: bool = False  # retention (or DELETE) removed the result object
    deleted: bool = False  # DELETE /v1/jobs/{id}: the job's objects were removed by its owner
    frames: int = 0
    audio: bool = False
    # billing and webhooks (gateway)
    credits: float = 0.0  # charged, once settled
    billing: BillingRecord | None = None
    webhook: WebhookState = Field(default_factory=WebhookState)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "timings" in data and "stage_seconds" not in data:
            data = {**data, "stage_seconds": data["timings"]}
        return data

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def video_info(self) -> VideoInfo:
        """The source's probe as ingest stored it: the later stages read this, they do not probe again."""
        if self.info is None:
            raise Transient(f"job {self.id} has no probe yet (not ingested)")
        return self.info.video_info()

    def metric_labels(self) -> tuple[str, str, str]:
        """(dialect, model, format) for videobg.metrics."""
        model = self.matte.model if self.matte and self.matte.model else self.spec.model
        return (self.dialect or self.spec.dialect, model, self.spec.output_format)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Job:
        return cls.model_validate_json(data)
