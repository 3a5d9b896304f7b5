"""What every dialect shares: reading request parameters (JSON object or multipart form) with the public
error codes, checking common fields, and the route class that tells the error handler a route's dialect.

Reading is checked in this order:

    empty body                                  -> invalid_request_body
    Content-Type not JSON or multipart/form-data -> unsupported_content_type
    JSON that does not parse, or is not an object -> invalid_request_body

then each dialect checks its fields: a required one absent, null or "" -> missing_parameter; a field of
the wrong type or value -> invalid_parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from services.common.record import BackgroundSpec, JobSpec, SourceRef
from services.gateway import assets, idempotency
from services.gateway.caller import Caller
from services.gateway.jobs import Gateway, Submitted
from videobg.errors import InvalidInput, InvalidRequestBody, MissingParameter, VideoBgError

JSON = "application/json"
MULTIPART = "multipart/form-data"
HEX_COLOR = re.compile(r"#?([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})")


class DialectRoute(APIRoute):
    """A route of one public dialect; `rest.py` writes errors raised under it in that dialect's shape
    (FastAPI puts the matched route in `request.scope["route"]` before dependencies run)."""

    dialect = ""


def route_class(dialect: str) -> type[APIRoute]:
    return type(f"{dialect.title().replace('-', '')}Route", (DialectRoute,), {"dialect": dialect})


# Path prefixes of each dialect, for requests that matched no route (404, 405): their errors still take
# the shape of the contract whose path was called.
PATH_PREFIXES = (
    ("/v1/video/remove-background", "pixelcut"),
    ("/v1/proxy/studio-background", "studio-background"),
    ("/v2/jobs", "studio-background"),
    ("/v1/jobs", "removebgvideo"),
    ("/api/process", "removebgvideo"),
)


def dialect_of(request: Request) -> str:
    route_dialect = getattr(request.scope.get("route"), "dialect", "")
    if route_dialect:
        return route_dialect
    path = request.url.path
    for prefix, dialect in PATH_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return dialect
    return ""


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused (invalid_request_body) as soon as it passes `max_bytes`, whether it declares a
    Content-Length or comes chunked: the gateway never holds more than the cap of one request."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InvalidRequestBody(f"The request body is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise InvalidRequestBody(f"The request body is larger than {max_bytes} bytes")
    return bytes(body)


def _replay(request: Request, body: bytes) -> Request:
    """A request over the same scope whose body is `body` (already read), for Starlette's form parser."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def read_params(request: Request, max_bytes: int) -> dict[str, Any]:
    body = await read_body(request, max_bytes)
    if not body.strip():
        raise InvalidRequestBody("The request body was empty")
    kind = media_type(request)
    if kind == JSON:
        try:
            params = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidRequestBody(f"The request body is not valid JSON: {e}") from None
        if not isinstance(params, dict):
            raise InvalidRequestBody("The request body must be a JSON object")
        return params
    if kind == MULTIPART:
        try:
            form = await _replay(request, body).form()
        except Exception as e:  # malformed boundaries and parts: python-multipart raises various types
            raise InvalidRequestBody(f"The multipart body could not be parsed: {e}") from None
        return {k: v for k, v in form.multi_items()}
    raise VideoBgError(
        f"Unsupported Content-Type {kind or '(none)'!r}: send {JSON} or {MULTIPART}",
        code="unsupported_content_type",
    )


# --- fields ----------------------------------------------------------------------------------------------


async def submit_job(
    request: Request,
    gw: Gateway,
    caller: Caller,
    dialect: str,
    to_spec: Callable[[dict[str, Any], Caller], JobSpec],
    *,
    auto_start_param: str | None = None,
) -> Submitted:
    """The submit every dialect makes: read the parameters (capped at `max_body_bytes`), translate them
    with the dialect's `to_spec`, create the job under the request's Idempotency-Key (a replay must carry
    the same dialect and parameters). With `auto_start_param`, that boolean parameter false (default
    true) creates a draft to start later."""
    key = idempotency.key_from(request)
    params = await read_params(request, gw.settings.max_body_bytes)
    spec = to_spec(params, caller)
    draft = auto_start_param is not None and not optional_bool(params, auto_start_param, True)
    fingerprint = idempotency.fingerprint(dialect, params)
    return await gw.create(spec, caller=caller, idempotency_key=key, fingerprint=fingerprint, draft=draft)


def absent(value: Any) -> bool:
    return value is None or value == ""


def optional_str(params: dict[str, Any], name: str, default: str) -> str:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    return value


def required_source(params: dict[str, Any], name: str, *, bare_ids: bool = False) -> SourceRef:
    """A source video or background image field: an http(s) URL -> {"url"}, or `asset://<id>` / this
    gateway's upload URL from POST /v1/uploads (or, with `bare_ids`, the bare asset id) -> {"asset_id"}
    (services/gateway/uploads.py)."""
    if absent(params.get(name)):
        raise MissingParameter(f"{name} is required")
    return assets.source_of(params[name], name, bare_ids=bare_ids)


def optional_source(params: dict[str, Any], name: str) -> SourceRef | None:
    return None if absent(params.get(name)) else assets.source_of(params[name], name)


def check_url(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{name} must be an http(s) URL")
    return url


def required_url(params: dict[str, Any], name: str) -> str:
    if absent(params.get(name)):
        raise MissingParameter(f"{name} is required")
    return check_url(params[name], name)


def optional_url(params: dict[str, Any], name: str) -> str | None:
    return None if absent(params.get(name)) else check_url(params[name], name)


def optional_bool(params: dict[str, Any], name: str, default: bool) -> bool:
    """A JSON boolean, or "true"/"false" (form fields are strings)."""
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{name} must be true or false")


def hex_rgb(value: Any, name: str, *, hash_required: bool = True) -> list[int]:
    """'#RGB' or '#RRGGBB' (the '#' optional where `hash_required` is false) -> [r, g, b]."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a hex color string such as '#1E90FF'")
    m = HEX_COLOR.fullmatch(value)
    if m is None or (hash_required and not value.startswith("#")):
        raise InvalidInput(f"{name} {value!r} must be a hex color: '#RGB' or '#RRGGBB'")
    digits = m.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return [int(digits[i : i + 2], 16) for i in (0, 2, 4)]


def color_background(rgb: list[int]) -> BackgroundSpec:
    r, g, b = rgb
    return BackgroundSpec(kind="color", rgb=(r, g, b))


def image_background(source: SourceRef) -> BackgroundSpec:
    return BackgroundSpec(kind="image", image=source)


WHITE = BackgroundSpec(kind="white")
TRANSPARENT = BackgroundSpec(kind="transparent")


# --- OpenAPI -------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """The error object of the studio-background and removebgvideo shapes."""

    code: str = Field(description="The public error code", examples=["invalid_parameter"])
    message: str


ERROR_DESCRIPTIONS = {
    400: "The request (or, for a job, its input) could not be processed",
    401: "The API key is missing or invalid",
    403: "Not enough credits for this job",
    404: "No such job (or not the caller's)",
    409: "The Idempotency-Key was used with a different request, or the job cannot make this move",
    429: "Too many requests for this key; retry after `Retry-After` seconds",
    500: "Internal service error",
}
RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def error_responses(model: type, examples: dict[int, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the dialect's error model and an example body."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, example in examples.items():
        entry: dict[str, Any] = {
            "model": model,
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {JSON: {"example": example}},
        }
        if status == 429:
            entry["headers"] = RETRY_AFTER_HEADER
        out[status] = entry
    return out


def request_body(schema: dict[str, Any], examples: dict[str, Any], *, form: bool = True) -> dict[str, Any]:
    """`openapi_extra=` documenting a body the route parses by hand (for the contract's error codes)."""
    content: dict[str, Any] = {JSON: {"schema": schema, "examples": examples}}
    if form:
        content[MULTIPART] = {"schema": schema}
    return {"requestBody": {"required": True, "content": content}}
