"""The studio-background dialect: `POST /v1/proxy/studio-background`, status at `GET /v2/jobs/{job_id}`.

Request (JSON or multipart form), header `X-API-Key` (or `Authorization: Bearer`), optional
`Idempotency-Key`:
    videoUrl     required, http(s) URL of the source video (camelCase)
    back_ground  optional hex color, "#1E90FF" / "#19F" (the '#' may be left out): subject over it
    imageUrl     optional http(s) URL of a replacement image: subject over it (not with back_ground)
    start, end   optional trim, seconds (number or "12.5") or "hh:mm:ss(.fff)" / "mm:ss"
With neither back_ground nor imageUrl the subject goes over white ("remove"). The output is always MP4
(H.264 video, AAC audio when the source has audio) at the source resolution. Billed per second of the
trimmed source.

202 {"status": "accepted", "message": "Job queued for processing",
     "job": {"id", "status": "queued", "service": "studio-background"}} + Location: /v2/jobs/{id}

GET /v2/jobs/{job_id} -> 200
    {"job": {"id", "status": queued|processing|completed|failed|cancelled, "service", "progress" 0..100,
             "created_at", "updated_at", "credits", "billed_seconds" (once ingest measured it), "price",
             "weights" (our extension: the weight files that ran, null until matting starts),
             "result": {"url", "expires_at", "expired", "content_type"}        when completed,
             "error": {"code", "message"}                                      when failed or cancelled}}
Errors: {"status": "error", "error": {"code", "message"}} with the HTTP status of the code (400, 401,
403 insufficient_api_credits, 404, 409, 429 + Retry-After).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.record import Job, JobSpec, TrimSpec
from services.gateway import idempotency, results
from services.gateway.caller import Caller
from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects.body import (
    WHITE,
    ErrorDetail,
    absent,
    color_background,
    error_responses,
    hex_rgb,
    image_background,
    request_body,
    required_source,
    route_class,
    submit_job,
)
from videobg.errors import InvalidInput, VideoBgError
from videobg.media.formats import get_format
from videobg.media.timeparse import parse_trim

NAME = "studio-background"
SUBMIT_PATH = "/v1/proxy/studio-background"
STATUS_PATH = "/v2/jobs/{job_id}"
OUTPUT_FORMAT = "mp4_h264"
ACCEPTED_MESSAGE = "Job queued for processing"

# What `service` says for jobs other dialects created (this status endpoint shows any of the caller's).
SERVICES = {NAME: NAME, "pixelcut": "pixelcut", "removebgvideo": "removebgvideo"}
STATUS = {"draft": "queued"}  # the rest pass through

router = APIRouter(tags=[NAME], route_class=route_class(NAME))


def error_body(err: VideoBgError) -> dict[str, Any]:
    return {"status": "error", "error": {"code": err.code, "message": err.message}}


def job_location(job_id: str) -> str:
    return STATUS_PATH.format(job_id=job_id)


def to_spec(params: dict[str, Any], caller: Caller) -> JobSpec:
    source = required_source(params, "videoUrl", bare_ids=True)  # seed 000: "URL or asset ID"
    color, image = params.get("back_ground"), params.get("imageUrl")
    if not absent(color) and not absent(image):
        raise InvalidInput("send back_ground (a hex color) or imageUrl (a replacement image), not both")
    if not absent(color):
        background = color_background(hex_rgb(color, "back_ground", hash_required=False))
    elif not absent(image):
        background = image_background(required_source(params, "imageUrl", bare_ids=True))
    else:
        background = WHITE
    trim = parse_trim(params.get("start"), params.get("end"))
    return JobSpec(
        source=source,
        trim=TrimSpec(start=trim.start, end=trim.end),
        background=background,
        output_format=OUTPUT_FORMAT,
        owner=caller.owner,
        dialect=NAME,
    )


def _mime(job: Job) -> str | None:
    try:
        return get_format(job.spec.output_format or OUTPUT_FORMAT).mime
    except VideoBgError:
        return None


def price_view(job: Job, prices: dict[str, float], currency: str) -> dict[str, Any] | None:
    """The seed's "Billed per second of source video (trimmed segment ...)": `billed_seconds` x the
    deployment's per-second price for the service that ran the job (`price_per_second`, default
    studio-background $0.06/s). None until ingest measured the seconds, or for a service not priced."""
    per_second = prices.get(job.dialect)
    seconds = job.billed_seconds
    if per_second is None or seconds is None:
        return None
    return {
        "amount": round(float(seconds) * per_second, 4),
        "currency": currency,
        "unit": "second",
        "unit_price": per_second,
    }


def job_view(
    job: Job, result: dict[str, Any], prices: dict[str, float] | None = None, currency: str = "USD"
) -> dict[str, Any]:
    """`result`: results.result_view of the job ({} unless completed). Fields without a value are null."""
    status = job.status.value
    view: dict[str, Any] = {
        "id": job.id,
        "status": STATUS.get(status, status),
        "service": SERVICES.get(job.dialect, job.dialect or NAME),
        "progress": round(job.progress, 1),
        "created_at": job.created or None,
        "updated_at": job.updated or None,
        "credits": job.credits,
        "billed_seconds": None,
        "price": None,
        "weights": job.weights or None,  # our extension: the weight files that ran (null until matting)
        "result": None,
        "error": None,
    }
    if job.billed_seconds is not None:
        view["billed_seconds"] = job.billed_seconds
    view["price"] = price_view(job, prices or {}, currency)
    if status == "completed":
        view["progress"] = 100.0
        view["result"] = {
            "url": result.get("result_url"),
            "expires_at": result.get("result_url_expires_at"),
            "expired": bool(result.get("result_expired")),
            "content_type": _mime(job),
        }
    if status in ("failed", "cancelled"):
        view["error"] = {
            "code": job.error_code or "internal_error",
            "message": job.error or "The job failed",
        }
    return {"job": view}


# --- OpenAPI ---------------------------------------------------------------------------------------------

JOB_ID_EXAMPLE = "550e8400-e29b-41d4-a716-446655440000"


class StudioAcceptedJob(BaseModel):
    id: str = Field(examples=[JOB_ID_EXAMPLE])
    status: str = Field(examples=["queued"])
    service: str = Field(examples=[NAME])


class StudioAccepted(BaseModel):
    status: str = Field(examples=["accepted"])
    message: str = Field(examples=[ACCEPTED_MESSAGE])
    job: StudioAcceptedJob


class StudioResult(BaseModel):
    url: str | None = Field(description="Expiring download URL of the MP4; download before expires_at")
    expires_at: str | None
    expired: bool = Field(description="true once retention deleted the result (url and expires_at null)")
    content_type: str | None = Field(None, examples=["video/mp4"])


class StudioPrice(BaseModel):
    amount: float = Field(description="billed_seconds x unit_price", examples=[1.8])
    currency: str = Field(examples=["USD"])
    unit: str = Field(examples=["second"])
    unit_price: float = Field(examples=[0.06])


class StudioJob(BaseModel):
    id: str = Field(examples=[JOB_ID_EXAMPLE])
    status: str = Field(description="queued | processing | completed | failed | cancelled")
    service: str = Field(examples=[NAME])
    progress: float = Field(description="0..100")
    created_at: str | None = None
    updated_at: str | None = None
    credits: float = Field(description="Credits charged (0 until the job completes)")
    billed_seconds: float | None = Field(None, description="Seconds of trimmed source billed")
    price: StudioPrice | None = Field(None, description="billed_seconds x the price table; null until known")
    weights: str | None = Field(
        None, description="The weight files that ran, '+'-joined; null until matting starts. Our extension"
    )
    result: StudioResult | None = Field(None, description="When completed, else null")
    error: ErrorDetail | None = Field(None, description="When failed or cancelled, else null")


class StudioJobStatus(BaseModel):
    job: StudioJob


class StudioError(BaseModel):
    status: str = Field(examples=["error"])
    error: ErrorDetail


_PARAMS = {
    "type": "object",
    "required": ["videoUrl"],
    "properties": {
        "videoUrl": {"type": "string", "format": "url", "description": "Source video URL"},
        "back_ground": {
            "type": "string",
            "pattern": "^#?([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$",
            "description": "Hex color of the new background (replace). Not with imageUrl.",
        },
        "imageUrl": {
            "type": "string",
            "format": "url",
            "description": "Replacement image URL. Not with back_ground.",
        },
        "start": {"type": ["number", "string"], "description": "Trim start: seconds or hh:mm:ss"},
        "end": {"type": ["number", "string"], "description": "Trim end: seconds or hh:mm:ss"},
    },
}
_EXAMPLES = {
    "color": {
        "value": {
            "videoUrl": "https://example.com/video.mp4",
            "back_ground": "#1E90FF",
            "start": 0,
            "end": 30,
        }
    },
    "image": {
        "value": {"videoUrl": "https://example.com/video.mp4", "imageUrl": "https://example.com/bg.jpg"}
    },
    "remove": {
        "value": {"videoUrl": "https://example.com/video.mp4", "start": "00:00:05", "end": "00:00:20"}
    },
}


def _err(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message}}


_ERRORS = error_responses(
    StudioError,
    {
        400: _err("invalid_parameter", "back_ground '#12345' must be a hex color: '#RGB' or '#RRGGBB'"),
        401: _err("invalid_auth_token", "API Token not found"),
        403: _err("insufficient_api_credits", "Insufficient credits available"),
        404: _err("not_found", f"job {JOB_ID_EXAMPLE} not found"),
        409: _err("conflict", "This Idempotency-Key was already used with a different request"),
        429: _err("rate_limit_exceeded", "Too many requests"),
    },
)


@router.post(
    SUBMIT_PATH,
    status_code=202,
    summary="Remove or replace video background",
    description="Subject over white (no background given), over a hex color (`back_ground`) or over a "
    "replacement image (`imageUrl`), optionally trimmed first (`start`/`end`). Output: MP4 (H.264/AAC) "
    "at the source resolution with the original audio. Async: poll `GET /v2/jobs/{job_id}`. "
    "Billed per second of the (trimmed) source.",
    openapi_extra=request_body(_PARAMS, _EXAMPLES),
    responses={
        202: {"model": StudioAccepted, "description": "Job queued"},
        **{k: v for k, v in _ERRORS.items() if k != 404},
    },
)
async def submit(request: Request, gw: GatewayDep, caller: CallerDep) -> JSONResponse:
    done = await submit_job(request, gw, caller, NAME, to_spec)
    job = done.job
    # A new job is reported as the seed's accepted body shows it, "queued": the record read back after
    # queueing may already say processing (ingest was quick), a race the conformance kit caught. A replay
    # reports the job as it is now.
    status = job.status.value if done.replayed else "queued"
    body = {
        "status": "accepted",
        "message": ACCEPTED_MESSAGE,
        "job": {"id": job.id, "status": STATUS.get(status, status), "service": NAME},
    }
    headers = {"Location": job_location(job.id), **idempotency.replay_headers(done.replayed)}
    return JSONResponse(body, status_code=202, headers=headers)


@router.get(
    STATUS_PATH,
    summary="Job status (any of the caller's jobs)",
    response_model=StudioJobStatus,
    responses={k: v for k, v in _ERRORS.items() if k in (401, 404, 429)},
)
async def status(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    job = await gw.get(job_id, caller)
    settings = gw.settings
    return job_view(
        job, await results.result_view(gw, job), settings.price_per_second, settings.price_currency
    )
