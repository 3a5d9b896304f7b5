"""The removebgvideo dialect: `POST /v1/jobs` (and its legacy alias `POST /api/process`),
`POST /v1/jobs/{job_id}/start`, `GET /v1/jobs/{job_id}`. Header `X-Api-Key`; optional `Idempotency-Key`.

Request (JSON or multipart form):
    video_url      required, http(s) URL
    output_format  webm (default) | mov | mp4 | gif | webp | png_sequence (our full names are accepted too)
                   webm -> webm_vp9, mov -> mov_proresks when transparent else mov_h265, mp4 -> mp4_h264
    bg_type        transparent (default) | green | white | black | blue | custom | color | image
    bg_color       [r, g, b] 0..255 (or "#RRGGBB"), for custom / color
    bg_image_url   http(s) URL, for image
    background     the nested form, {"type", "color", "image_url"}; agrees with bg_* when both are given
    model          original (default) | light | pro | human
    text_prompt    pro only: a small grammar choosing whom to keep (videobg/matte/prompt.py); another model
                   or an unknown word is a 400 invalid_parameter listing what is understood
    webhook_url    http(s) URL: job.started / completed / failed callbacks
    auto_start     true (default); false creates a `draft` job that POST /v1/jobs/{id}/start starts
    start, end     optional trim (our extension; the web console sends it): seconds (number or "12.5") or
                   "hh:mm:ss(.fff)" / "mm:ss", as in the studio-background dialect; billed on the trimmed span
Fields of a background type that does not use them (bg_color with green, ...) are ignored. Output format
policy: with no background named and a format without alpha (mp4), the subject goes over chroma-key green
(0, 177, 64), reported as `background.defaulted`; an explicit bg_type transparent with mp4 is refused.

200 {"success": true, "id", "status": "processing" | "draft", "message"}
GET /v1/jobs/{id} -> 200 {"success": true, "id", "status", "progress", "stage", "output_url",
    "output_url_expires_at", "result_expired" (completed),
    "error": {"code", "message"} (failed, cancelled), "input" {"video_url", "start", "end" (trim)}, "model",
    "weights" (our extension: the weight files that ran, null until matting starts), "output_format", "background",
    "webhook_url", "credits": {"reserved", "charged"}, "billed_seconds", "created_at", "updated_at"}
Status: draft | processing (queued or running) | completed | failed | cancelled.
Errors: {"success": false, "error": {"code", "message"}} with the HTTP status of the code (400, 401, 403
insufficient_api_credits, 404, 409, 429 + Retry-After).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.record import BackgroundSpec, Job, JobSpec, SourceRef, Status, TrimSpec
from services.gateway import assets, idempotency, results
from services.gateway.caller import Caller
from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects.body import (
    TRANSPARENT,
    WHITE,
    ErrorDetail,
    absent,
    color_background,
    error_responses,
    hex_rgb,
    image_background,
    optional_source,
    optional_str,
    optional_url,
    request_body,
    required_source,
    route_class,
    submit_job,
)
from services.gateway.jobs import Gateway
from videobg.errors import InvalidInput, MissingParameter, VideoBgError
from videobg.matte.session import check_text_prompt  # torch-free; shared with the segmenter
from videobg.media.formats import FORMATS as OUR_FORMATS
from videobg.media.timeparse import parse_trim

NAME = "removebgvideo"
MODELS = ("original", "light", "pro", "human")
DEFAULT_MODEL = "original"
FORMATS = ("webm", "mov", "mp4", "gif", "webp", "png_sequence")
DEFAULT_FORMAT = "webm"
PRESET_COLORS = {"green": [0, 255, 0], "black": [0, 0, 0], "blue": [0, 0, 255]}
BG_TYPES = ("transparent", "green", "white", "black", "blue", "custom", "color", "image")
STATUS = {"queued": "processing"}  # the contract's "usually processing"; the rest pass through
ALPHA_FORMATS = ("webm", "mov", "gif", "webp", "png_sequence")
# Chroma-key green (the broadcast "#00B140"): what a transparent-by-default request gets in a format
# without alpha. Every editor keys it out in one step, and unlike black it is rarely in hair or clothes.
DEFAULT_OPAQUE_BG = (0, 177, 64)
SHORT_FORMAT = {"webm_vp9": "webm", "mov_proresks": "mov", "mov_h265": "mov", "mp4_h264": "mp4"}

router = APIRouter(tags=[NAME], route_class=route_class(NAME))


def error_body(err: VideoBgError) -> dict[str, Any]:
    return {"success": False, "error": {"code": err.code, "message": err.message}}


# --- request -> spec -------------------------------------------------------------------------------------


def parse_rgb(value: Any, name: str) -> list[int]:
    """[r, g, b] of 0..255 integers; also "#RRGGBB", or "[r,g,b]" / "r,g,b" from a form field."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("#"):
            return hex_rgb(text, name)
        try:
            value = json.loads(text if text.startswith("[") else f"[{text}]")
        except ValueError:
            raise InvalidInput(f"{name} must be an RGB array such as [0, 177, 64]") from None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        raise InvalidInput(f"{name} must be an RGB array of three integers 0..255, such as [0, 177, 64]")
    return [int(c) for c in value]


def background_type_given(params: dict[str, Any]) -> bool:
    """Whether the client chose a background (flat `bg_type` or nested `background.type`)."""
    nested = params.get("background")
    if isinstance(nested, dict):
        return not absent(nested.get("type"))
    return not absent(nested) or not absent(params.get("bg_type"))


def parse_background(params: dict[str, Any]) -> BackgroundSpec:
    nested = params.get("background")
    if isinstance(nested, str) and nested.strip().startswith("{"):  # a JSON object in a form field
        try:
            nested = json.loads(nested)
        except ValueError:
            raise InvalidInput('background must be an object such as {"type": "transparent"}') from None
    if isinstance(nested, str):
        nested = {"type": nested}
    if nested is not None and not isinstance(nested, dict):
        raise InvalidInput('background must be an object such as {"type": "transparent"}')
    nested = nested or {}
    flat_type, nested_type = params.get("bg_type"), nested.get("type")
    for name, value in (("bg_type", flat_type), ("background.type", nested_type)):
        if not absent(value) and value not in BG_TYPES:
            raise InvalidInput(f"{name} {value!r} must be one of {', '.join(BG_TYPES)}")
    if not absent(flat_type) and not absent(nested_type) and flat_type != nested_type:
        raise InvalidInput(f"bg_type {flat_type!r} and background.type {nested_type!r} disagree")
    kind = (nested_type if not absent(nested_type) else flat_type) or "transparent"
    if kind == "transparent":
        return TRANSPARENT
    if kind == "white":
        return WHITE
    if kind in PRESET_COLORS:
        return color_background(list(PRESET_COLORS[kind]))
    if kind in ("custom", "color"):
        name, color = ("background.color", nested.get("color"))
        if absent(color):
            name, color = "bg_color", params.get("bg_color")
        if absent(color):
            raise MissingParameter(f"bg_type {kind} needs bg_color, an RGB array such as [0, 177, 64]")
        return color_background(parse_rgb(color, name))
    image = optional_source(nested, "image_url") or optional_source(params, "bg_image_url")
    if not image:
        raise MissingParameter("bg_type image needs bg_image_url, the URL of the background image")
    return image_background(image)


def output_format(params: dict[str, Any], transparent: bool) -> str:
    fmt = optional_str(params, "output_format", DEFAULT_FORMAT) or DEFAULT_FORMAT
    if fmt == "mov":
        fmt = "mov_proresks" if transparent else "mov_h265"
    ours = {"webm": "webm_vp9", "mp4": "mp4_h264"}.get(fmt, fmt)
    if ours not in OUR_FORMATS:
        raise InvalidInput(f"output_format {fmt!r} must be one of {', '.join(FORMATS)}")
    if transparent and OUR_FORMATS[ours].alpha_pix_fmt is None:
        raise InvalidInput(
            f"bg_type transparent needs an output_format with an alpha channel ({', '.join(ALPHA_FORMATS)}); "
            f"{fmt} has none: choose one of those, or a background (bg_type green, black, white, ...)"
        )
    return ours


def background_and_format(params: dict[str, Any]) -> tuple[BackgroundSpec, str]:
    """The output format policy. A transparent background needs a format with alpha. When the client
    named no background at all (the contract's default is transparent) and the format has no alpha
    (mp4, or our mov_h265), the subject goes over DEFAULT_OPAQUE_BG instead of refusing the most common
    request there is; the job body says so (`background.defaulted`). An explicit `transparent` with
    such a format is refused, naming the formats that carry alpha (docs/CONTRACTS.md)."""
    background = parse_background(params)
    if background.transparent and not background_type_given(params):
        fmt = optional_str(params, "output_format", DEFAULT_FORMAT) or DEFAULT_FORMAT
        ours = {"webm": "webm_vp9", "mp4": "mp4_h264", "mov": "mov_proresks"}.get(fmt, fmt)
        if ours in OUR_FORMATS and OUR_FORMATS[ours].alpha_pix_fmt is None:
            background = color_background(list(DEFAULT_OPAQUE_BG)).model_copy(
                update={"defaulted": f"{fmt} has no alpha channel: composited over chroma-key green"}
            )
    return background, output_format(params, background.transparent)


def to_spec(params: dict[str, Any], caller: Caller) -> JobSpec:
    source = required_source(params, "video_url")
    model = optional_str(params, "model", DEFAULT_MODEL) or DEFAULT_MODEL
    if model not in MODELS:
        raise InvalidInput(f"model {model!r} must be one of {', '.join(MODELS)}")
    text_prompt = params.get("text_prompt")
    check_text_prompt(model, text_prompt)
    background, fmt = background_and_format(params)
    trim = parse_trim(params.get("start"), params.get("end"))
    return JobSpec(
        source=source,
        trim=TrimSpec(start=trim.start, end=trim.end),
        model=model,
        background=background,
        output_format=fmt,
        webhook_url=optional_url(params, "webhook_url") or "",
        text_prompt=text_prompt.strip() if isinstance(text_prompt, str) else "",
        owner=caller.owner,
        dialect=NAME,
    )


# --- record -> views ---------------------------------------------------------------------------------------


def _background_view(bg: BackgroundSpec) -> dict[str, Any]:
    view: dict[str, Any] = {"type": bg.kind}
    if bg.kind == "color":
        view["color"] = list(bg.rgb)
    if bg.defaulted:  # the output format policy chose this background, not the client
        view["defaulted"] = True
        view["reason"] = bg.defaulted
    if bg.kind == "image":
        view["image_url"] = _url_of(bg.image)
    return view


def _url_of(source: SourceRef | None) -> str | None:
    """A spec source back in the request's spelling: the URL, or asset://<id>."""
    if source is None:
        return None
    return source.url or (assets.asset_url(source.asset_id) if source.asset_id else None)


def job_view(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """`result`: results.result_view of the job ({} unless completed)."""
    spec = job.spec
    status = job.status.value
    billing = job.billing
    fmt = spec.output_format
    view: dict[str, Any] = {
        "success": True,
        "id": job.id,
        "status": STATUS.get(status, status),
        "progress": 100.0 if status == Status.COMPLETED else round(job.progress, 1),
        "stage": job.stage,
        "input": {"video_url": _url_of(spec.source), "start": spec.trim.start, "end": spec.trim.end},
        "model": job.model or spec.model,
        "weights": job.weights or None,  # our extension: what ran for `model` (null until matting starts)
        "output_format": SHORT_FORMAT.get(fmt, fmt),
        "background": _background_view(spec.background),
        "webhook_url": spec.webhook_url or None,
        "credits": {
            "reserved": round(billing.reserved_milli / 1000, 3)
            if billing is not None and billing.state == "reserved"
            else 0.0,
            "charged": job.credits,
        },
        "billed_seconds": job.billed_seconds,
        "created_at": job.created or None,
        "updated_at": job.updated or None,
        "output_url": None,
        "output_url_expires_at": None,
        "result_expired": None,
        "error": None,
    }
    if status == "completed":
        view["output_url"] = result.get("result_url")
        view["output_url_expires_at"] = result.get("result_url_expires_at")
        view["result_expired"] = bool(result.get("result_expired"))
    if status in ("failed", "cancelled"):
        view["error"] = {
            "code": job.error_code or "internal_error",
            "message": job.error or "The job failed",
        }
    return view


def created_view(job: Job) -> dict[str, Any]:
    status = job.status.value
    message = {
        "draft": f"Draft job created; start it with POST /v1/jobs/{job.id}/start",
        "queued": "Job created and processing started",
        "processing": "Job created and processing started",
    }.get(status, f"Job is {status}")
    return {"success": True, "id": job.id, "status": STATUS.get(status, status), "message": message}


# --- OpenAPI ---------------------------------------------------------------------------------------------

JOB_ID_EXAMPLE = "0f8fad5b-d9cb-469f-a165-70867728950e"


class RemovebgvideoCreated(BaseModel):
    success: bool = Field(description="Request accepted", examples=[True])
    id: str = Field(description="Track this id for status polling", examples=[JOB_ID_EXAMPLE])
    status: str = Field(description="Initial status, usually processing (draft when auto_start=false)")
    message: str = Field(
        description="Submission result message", examples=["Job created and processing started"]
    )


class JobCredits(BaseModel):
    reserved: float = Field(description="Held for the job while it runs")
    charged: float = Field(
        description="Charged once it ended: the source seconds if it completed, the seconds processed if "
        "it was cancelled during processing or failed with deadline_exceeded, else 0 (per second, model rate)"
    )


class RemovebgvideoJobStatus(BaseModel):
    success: bool
    id: str = Field(examples=[JOB_ID_EXAMPLE])
    status: str = Field(description="draft | processing | completed | failed | cancelled")
    progress: float = Field(description="0..100")
    stage: str = Field(description="ingest | segment | encode | done")
    output_url: str | None = Field(None, description="Expiring download URL, when completed")
    output_url_expires_at: str | None = Field(None, description="When output_url stops working")
    result_expired: bool | None = Field(None, description="true once retention deleted the result")
    error: ErrorDetail | None = Field(None, description="When failed or cancelled")
    input: dict[str, Any] = Field(examples=[{"video_url": "https://cdn.example.com/input.mp4"}])
    model: str = Field(examples=["original"])
    weights: str | None = Field(
        None,
        description="The weight files that ran for `model`, '+'-joined (u2netp, u2net, rvm_mobilenetv3, "
        "selfie_segmentation; pro: rvm_mobilenetv3+u2netp); null until matting starts. Our extension",
        examples=["u2netp"],
    )
    output_format: str = Field(examples=["webm"])
    background: dict[str, Any] = Field(examples=[{"type": "transparent"}])
    webhook_url: str | None = None
    credits: JobCredits
    billed_seconds: float | None = Field(
        None, description="Seconds of source billed, once ingest measured it"
    )
    created_at: str | None = None
    updated_at: str | None = None


class RemovebgvideoError(BaseModel):
    success: bool = Field(examples=[False])
    error: ErrorDetail


_PARAMS = {
    "type": "object",
    "required": ["video_url"],
    "properties": {
        "video_url": {
            "type": "string",
            "format": "url",
            "description": "Input video URL (from upload or external URL)",
        },
        "output_format": {"type": "string", "enum": list(FORMATS), "default": DEFAULT_FORMAT},
        "bg_type": {"type": "string", "enum": list(BG_TYPES), "default": "transparent"},
        "bg_color": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": 255},
            "minItems": 3,
            "maxItems": 3,
            "description": "RGB array for custom / color backgrounds",
        },
        "bg_image_url": {
            "type": "string",
            "format": "url",
            "description": "Background image, for bg_type image",
        },
        "background": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": list(BG_TYPES)},
                "color": {"type": "array", "items": {"type": "integer"}},
                "image_url": {"type": "string", "format": "url"},
            },
        },
        "model": {"type": "string", "enum": list(MODELS), "default": DEFAULT_MODEL},
        "text_prompt": {
            "type": "string",
            "description": "pro only: whom to keep, e.g. 'the dancer in the center', 'everyone', "
            "'the largest person', 'the product' (docs/API.md lists the words understood)",
        },
        "webhook_url": {
            "type": "string",
            "format": "url",
            "description": "job.started/completed/failed callbacks",
        },
        "auto_start": {"type": "boolean", "default": True, "description": "false: create a draft job"},
        "start": {"type": ["number", "string"], "description": "Trim start: seconds or hh:mm:ss (extension)"},
        "end": {"type": ["number", "string"], "description": "Trim end: seconds or hh:mm:ss (extension)"},
    },
}
_EXAMPLES = {
    "guide": {
        "summary": "Core payload (Guides)",
        "value": {
            "video_url": "https://cdn.example.com/input.mp4",
            "output_format": "webm",
            "bg_type": "transparent",
            "model": "original",
        },
    },
    "nested": {
        "summary": "Nested background (API reference)",
        "value": {
            "video_url": "https://cdn.example.com/input.mp4",
            "model": "original",
            "background": {"type": "transparent"},
            "output_format": "webm",
            "auto_start": True,
        },
    },
    "image": {
        "summary": "Image background, draft",
        "value": {
            "video_url": "https://cdn.example.com/input.mp4",
            "bg_type": "image",
            "bg_image_url": "https://cdn.example.com/bg.jpg",
            "output_format": "mp4",
            "auto_start": False,
        },
    },
}


def _err(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


_ERRORS = error_responses(
    RemovebgvideoError,
    {
        400: _err("invalid_parameter", "model 'ultra' must be one of original, light, pro, human"),
        401: _err("invalid_auth_token", "API Token not found"),
        403: _err("insufficient_api_credits", "Insufficient credits available"),
        404: _err("not_found", f"job {JOB_ID_EXAMPLE} not found"),
        409: _err("conflict", "This Idempotency-Key was already used with a different request"),
        429: _err("rate_limit_exceeded", "Too many requests"),
    },
)
_SUBMIT: dict[str, Any] = {
    "openapi_extra": request_body(_PARAMS, _EXAMPLES),
    "response_model": RemovebgvideoCreated,
    "responses": {k: v for k, v in _ERRORS.items() if k != 404},
}


async def _create(request: Request, gw: Gateway, caller: Caller) -> JSONResponse:
    done = await submit_job(request, gw, caller, NAME, to_spec, auto_start_param="auto_start")
    return JSONResponse(created_view(done.job), headers=idempotency.replay_headers(done.replayed))


@router.post(
    "/v1/jobs",
    summary="Process Video: create (and start) a background removal job",
    description="Creates a job and starts it, or with `auto_start: false` a draft to start later.",
    **_SUBMIT,
)
async def create_job(request: Request, gw: GatewayDep, caller: CallerDep) -> JSONResponse:
    return await _create(request, gw, caller)


@router.post("/api/process", summary="Process Video (legacy path): same as POST /v1/jobs", **_SUBMIT)
async def process(request: Request, gw: GatewayDep, caller: CallerDep) -> JSONResponse:
    return await _create(request, gw, caller)


@router.post(
    "/v1/jobs/{job_id}/start",
    summary="Start a draft job",
    description="Reserves the job's credits and queues it. Starting a started job returns it as it is.",
    response_model=RemovebgvideoCreated,
    responses=_ERRORS,
)
async def start_job(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    job = await gw.start(job_id, caller)
    view = created_view(job)
    view["message"] = "Job started" if job.status in (Status.QUEUED, Status.PROCESSING) else view["message"]
    return view


@router.get(
    "/v1/jobs/{job_id}",
    summary="Job status",
    response_model=RemovebgvideoJobStatus,
    responses={k: v for k, v in _ERRORS.items() if k in (401, 404, 429)},
)
async def get_job(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    job = await gw.get(job_id, caller)
    return job_view(job, await results.result_view(gw, job))


# --- listing and deleting ---------------------------------------------------------------------------------

# The contract's statuses -> ours (its "processing" is our queued or processing)
LIST_STATUSES = {
    "draft": ("draft",),
    "processing": ("queued", "processing"),
    "queued": ("queued",),
    "completed": ("completed",),
    "failed": ("failed",),
    "cancelled": ("cancelled",),
}
MAX_PAGE = 100


class RemovebgvideoJobList(BaseModel):
    success: bool
    jobs: list[RemovebgvideoJobStatus]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")
    limit: int


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return 20
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidInput(f"limit must be an integer 1..{MAX_PAGE}")
    return int(value)


def _statuses(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    out: list[str] = []
    for name in value.split(","):
        name = name.strip()
        if name not in LIST_STATUSES:
            raise InvalidInput(f"status {name!r} must be one of {', '.join(LIST_STATUSES)} (comma-separated)")
        out.extend(LIST_STATUSES[name])
    return tuple(out)


@router.get(
    "/v1/jobs",
    summary="List the key's jobs",
    description="Newest first. `limit` 1..100 (default 20); `cursor`: the previous page's `next_cursor`; "
    "`status`: draft, processing, completed, failed or cancelled (comma-separated for several).",
    response_model=RemovebgvideoJobList,
    responses={k: v for k, v in _ERRORS.items() if k in (400, 401, 429)},
)
async def list_jobs(
    gw: GatewayDep,
    caller: CallerDep,
    limit: str | None = None,
    cursor: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    n = _limit(limit)
    jobs, next_cursor = await gw.list_jobs(caller, limit=n, cursor=cursor or "", statuses=_statuses(status))
    views = await asyncio.gather(*(results.result_view(gw, job) for job in jobs))
    return {
        "success": True,
        "jobs": [job_view(job, view) for job, view in zip(jobs, views, strict=True)],
        "next_cursor": next_cursor,
        "limit": n,
    }


@router.delete(
    "/v1/jobs/{job_id}",
    summary="Cancel a job, or delete a finished job's result",
    description="A draft, queued or processing job is cancelled (charged only for the seconds already "
    "processed, if processing had started). A finished job's "
    "stored files (source, mattes, result) are deleted; its record stays, with `result_expired: true`.",
    response_model=RemovebgvideoJobStatus,
    responses={k: v for k, v in _ERRORS.items() if k in (401, 404, 429)},
)
async def delete_job(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    job = await gw.delete(job_id, caller)
    return job_view(job, await results.result_view(gw, job))
