"""The Pixelcut dialect: `POST /v1/video/remove-background` and its job status endpoint.

Request (application/json or multipart/form-data fields):
    video_url         required, http(s) URL
    background_color  "transparent" | "#RGB" | "#RRGGBB", default "#000000"
    output_format     mp4_h264 | mp4_h265 | webm_vp9 | mov_h265 | mov_proresks | mkv_h264 | mkv_h265 |
                      mkv_vp9 | gif, default mp4_h264; "transparent" needs webm_vp9, mov_proresks or gif
Responses: 202 {"job_id"} + Location; 400 {"error", "error_code"}; status JSON below.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.common import jobspec
from services.common.jobstore import Job
from services.gateway.core import Caller
from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects.body import read_params
from videobg.errors import InvalidInput, MissingParameter

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

router = APIRouter(tags=[NAME])


def job_location(job_id: str) -> str:
    return f"{PREFIX}/job/{job_id}"


def _optional_str(params: dict[str, Any], name: str, default: str) -> str:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    return value


def parse_background(value: str) -> dict[str, Any]:
    if not COLOR.fullmatch(value):
        raise InvalidInput(f"background_color {value!r} must be 'transparent', '#RGB' or '#RRGGBB'")
    if value == "transparent":
        return {"kind": "transparent", "rgb": [255, 255, 255], "image": None}
    hexes = value[1:]
    if len(hexes) == 3:
        hexes = "".join(c * 2 for c in hexes)
    rgb = [int(hexes[i : i + 2], 16) for i in (0, 2, 4)]
    return {"kind": "color", "rgb": rgb, "image": None}


def to_spec(params: dict[str, Any], caller: Caller) -> jobspec.Spec:
    """Pixelcut request parameters -> the internal job spec (raises the contract's 400 errors)."""
    url = params.get("video_url")
    if url is None or url == "":
        raise MissingParameter("video_url is required")
    if not isinstance(url, str):
        raise InvalidInput("video_url must be a string")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("video_url must be an http(s) URL")
    background = parse_background(_optional_str(params, "background_color", DEFAULT_COLOR))
    fmt = _optional_str(params, "output_format", DEFAULT_FORMAT)
    if fmt not in FORMATS:
        raise InvalidInput(f"output_format {fmt!r} must be one of {', '.join(FORMATS)}")
    if background["kind"] == "transparent" and fmt not in TRANSPARENT_FORMATS:
        raise InvalidInput(
            f"background_color 'transparent' requires output_format {', '.join(TRANSPARENT_FORMATS)}; got {fmt}"
        )
    return {
        "source": {"url": url.strip()},
        "trim": {"start": 0.0, "end": None},
        "model": "",
        "background": background,
        "output_format": fmt,
        "webhook_url": "",
        "text_prompt": "",
        "owner": caller.owner,
        "dialect": NAME,
    }


def status_view(job: Job, result_url: str | None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "job_id": job["id"],
        "status": STATUS.get(job.get("status", ""), "queued"),
        "progress": round(float(job.get("progress") or 0), 1),
    }
    if view["status"] == "completed":
        view["progress"] = 100.0
        view["result_url"] = result_url
    if view["status"] == "failed":
        view["error"] = job.get("error") or "The job failed"
        view["error_code"] = job.get("error_code") or "internal_error"
    return view


_PARAMS = {
    "type": "object",
    "required": ["video_url"],
    "properties": {
        "video_url": {"type": "string", "format": "url"},
        "background_color": {
            "type": "string",
            "pattern": f"^({COLOR.pattern})$",
            "default": DEFAULT_COLOR,
        },
        "output_format": {"type": "string", "enum": list(FORMATS), "default": DEFAULT_FORMAT},
    },
}
# Parsed by hand (read_params) for the contract's error codes; this only documents the body in /docs.
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _PARAMS}, "multipart/form-data": {"schema": _PARAMS}},
    }
}


@router.post(PREFIX, status_code=202, openapi_extra=_OPENAPI)
async def submit(request: Request, gw: GatewayDep, caller: CallerDep) -> JSONResponse:
    params = await read_params(request, gw.settings.max_body_bytes)
    job = await gw.submit(to_spec(params, caller))
    return JSONResponse({"job_id": job["id"]}, status_code=202, headers={"Location": job_location(job["id"])})


@router.get(PREFIX + "/job/{job_id}")
async def status(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    job = await gw.get(job_id, caller)
    return status_view(job, gw.result_url(job))
