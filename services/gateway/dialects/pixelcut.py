"""The Pixelcut dialect: `POST /v1/video/remove-background` and its job status endpoint.

Request (application/json or multipart/form-data fields), header `X-API-KEY`, optional `Idempotency-Key`:
    video_url         required, http(s) URL
    background_color  "transparent" | "#RGB" | "#RRGGBB", default "#000000"
    output_format     mp4_h264 | mp4_h265 | webm_vp9 | mov_h265 | mov_proresks | mkv_h264 | mkv_h265 |
                      mkv_vp9 | gif, default mp4_h264; "transparent" needs webm_vp9, mov_proresks or gif
Responses: 202 {"job_id"} + Location; errors {"error", "error_code"}: 400 (invalid_request_body,
missing_parameter, invalid_parameter, unsupported_content_type), 401 invalid_auth_token, 403
insufficient_api_credits, 409 conflict (Idempotency-Key reuse), 429 rate_limit_exceeded + Retry-After.

Input limits (100 MB, 60 s, 64..4096 px, the containers and codecs listed) are checked at ingest, where
the video is first seen: the job then fails with file_size_too_large, resolution_too_high,
invalid_parameter (too long, too small), malformed_image or unsupported_image_format, which the status
endpoint reports as `error_code`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.record import BackgroundSpec, Job, JobSpec
from services.gateway import idempotency, results
from services.gateway.caller import Caller
from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects.body import (
    TRANSPARENT,
    color_background,
    error_responses,
    optional_str,
    request_body,
    required_source,
    route_class,
    submit_job,
)
from videobg.errors import InvalidInput, VideoBgError

NAME = "pixelcut"
PREFIX = "/v1/video/remove-background"

COLOR = re.compile(r"transparent|#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}")
DEFAULT_COLOR = "#000000"
FORMATS = (
    "mp4_h264", "mp4_h265", "webm_vp9", "mov_h265", "mov_proresks", "mkv_h264", "mkv_h265", "mkv_vp9", "gif",
)  # fmt: skip
DEFAULT_FORMAT = "mp4_h264"
TRANSPARENT_FORMATS = ("webm_vp9", "mov_proresks", "gif")  # the contract's list (mkv_vp9 is not on it)

# Our statuses -> the contract's. A cancelled job (gRPC or internal API) reads as failed + "cancelled".
STATUS = {
    "draft": "queued",
    "queued": "queued",
    "processing": "processing",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "failed",
}

router = APIRouter(tags=[NAME], route_class=route_class(NAME))


def error_body(err: VideoBgError) -> dict[str, Any]:
    return err.to_dict()


def job_location(job_id: str) -> str:
    return f"{PREFIX}/job/{job_id}"


def parse_background(value: str) -> BackgroundSpec:
    if not COLOR.fullmatch(value):
        raise InvalidInput(f"background_color {value!r} must be 'transparent', '#RGB' or '#RRGGBB'")
    if value == "transparent":
        return TRANSPARENT
    hexes = value[1:]
    if len(hexes) == 3:
        hexes = "".join(c * 2 for c in hexes)
    return color_background([int(hexes[i : i + 2], 16) for i in (0, 2, 4)])


def to_spec(params: dict[str, Any], caller: Caller) -> JobSpec:
    """Pixelcut request parameters -> the internal job spec (raises the contract's 400 errors)."""
    source = required_source(params, "video_url")
    background = parse_background(optional_str(params, "background_color", DEFAULT_COLOR))
    fmt = optional_str(params, "output_format", DEFAULT_FORMAT)
    if fmt not in FORMATS:
        raise InvalidInput(f"output_format {fmt!r} must be one of {', '.join(FORMATS)}")
    if background.transparent and fmt not in TRANSPARENT_FORMATS:
        raise InvalidInput(
            f"background_color 'transparent' requires output_format {', '.join(TRANSPARENT_FORMATS)}; got {fmt}"
        )
    return JobSpec(source=source, background=background, output_format=fmt, owner=caller.owner, dialect=NAME)


def status_view(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """`result`: results.result_view of the job ({} unless completed). Every field is present; the ones
    without a value (the result before completion, the error unless failed) are null."""
    view: dict[str, Any] = {
        "job_id": job.id,
        "status": STATUS[job.status],
        "progress": round(job.progress, 1),
        "result_url": None,
        "result_url_expires_at": None,
        "result_expired": None,
        "weights": job.weights or None,  # our extension: the weight files that ran (null until matting)
        "error": None,
        "error_code": None,
    }
    if view["status"] == "completed":
        view["progress"] = 100.0
        view.update(result)
    if view["status"] == "failed":
        view["error"] = job.error or "The job failed"
        view["error_code"] = job.error_code or "internal_error"
    return view


# --- OpenAPI ---------------------------------------------------------------------------------------------

JOB_ID_EXAMPLE = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


class PixelcutJobAccepted(BaseModel):
    job_id: str = Field(description="Identifies the job for status checks", examples=[JOB_ID_EXAMPLE])


class PixelcutJobStatus(BaseModel):
    job_id: str = Field(examples=[JOB_ID_EXAMPLE])
    status: str = Field(description="queued | processing | completed | failed", examples=["completed"])
    progress: float = Field(description="0..100", examples=[100.0])
    result_url: str | None = Field(None, description="Expiring download URL; when completed")
    result_url_expires_at: str | None = Field(None, description="When result_url stops working")
    result_expired: bool | None = Field(None, description="true once retention deleted the result")
    weights: str | None = Field(
        None, description="The weight files that ran, '+'-joined; null until matting starts. Our extension"
    )
    error: str | None = Field(None, description="When failed")
    error_code: str | None = Field(None, description="When failed", examples=["file_size_too_large"])


class PixelcutError(BaseModel):
    error: str = Field(description="A description of the error", examples=["File size too large"])
    error_code: str = Field(examples=["file_size_too_large"])


_PARAMS = {
    "type": "object",
    "required": ["video_url"],
    "properties": {
        "video_url": {
            "type": "string",
            "format": "url",
            "description": "URL of the video to be processed. Must be a publicly accessible URL.",
        },
        "background_color": {
            "type": "string",
            "pattern": f"^({COLOR.pattern})$",
            "default": DEFAULT_COLOR,
            "description": '"transparent" (needs webm_vp9, mov_proresks or gif) or a hex code',
        },
        "output_format": {"type": "string", "enum": list(FORMATS), "default": DEFAULT_FORMAT},
    },
}
_EXAMPLES = {
    "color": {"value": {"video_url": "https://example.com/video.mp4", "background_color": "#FF5733"}},
    "transparent": {
        "value": {
            "video_url": "https://example.com/video.mp4",
            "background_color": "transparent",
            "output_format": "webm_vp9",
        }
    },
}
_ERRORS = error_responses(
    PixelcutError,
    {
        400: {"error": "File size too large", "error_code": "file_size_too_large"},
        401: {"error": "API Token not found", "error_code": "invalid_auth_token"},
        403: {"error": "Insufficient credits available", "error_code": "insufficient_api_credits"},
        404: {"error": f"job {JOB_ID_EXAMPLE} not found", "error_code": "not_found"},
        409: {
            "error": "This Idempotency-Key was already used with a different request",
            "error_code": "conflict",
        },
        429: {"error": "Too many requests", "error_code": "rate_limit_exceeded"},
        500: {"error": "Internal service error", "error_code": "internal_error"},
    },
)


@router.post(
    PREFIX,
    status_code=202,
    summary="Remove Video Background",
    description="Removes the background from a video and optionally replaces it with a solid color or "
    "makes it transparent. Input limits: 100 MB, 60 s, 64x64 to 4096x4096 px; MP4, MOV, WebM, MKV, GIF.",
    openapi_extra=request_body(_PARAMS, _EXAMPLES),
    responses={
        202: {
            "model": PixelcutJobAccepted,
            "description": "Accepted - processing has started",
            "headers": {
                "Location": {"description": "Endpoint to poll for job status", "schema": {"type": "string"}}
            },
        },
        **{k: v for k, v in _ERRORS.items() if k != 404},
    },
)
async def submit(request: Request, gw: GatewayDep, caller: CallerDep) -> JSONResponse:
    done = await submit_job(request, gw, caller, NAME, to_spec)
    job_id = done.job.id
    headers = {"Location": job_location(job_id), **idempotency.replay_headers(done.replayed)}
    return JSONResponse({"job_id": job_id}, status_code=202, headers=headers)


@router.get(
    PREFIX + "/job/{job_id}",
    summary="Remove Video Background job status",
    response_model=PixelcutJobStatus,
    responses={k: v for k, v in _ERRORS.items() if k in (401, 404, 429)},
)
async def status(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    job = await gw.get(job_id, caller)
    return status_view(job, await results.result_view(gw, job))
