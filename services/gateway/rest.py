"""The REST app: the dialect routers, usage, health, an internal job view, and the one error translation.

Errors leave with the HTTP status `videobg.errors.ERROR_TABLE` names for the code (nothing here picks a
status by hand), in the body shape of the dialect whose route raised it (`dialects.error_body`; the house
shape `{"error": message, "error_code": code}` elsewhere), plus `Retry-After` on 429.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import logs
from services.gateway import assets, console, uploads, usage
from services.gateway.auth import ApiKeyAuth
from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects.registry import ROUTERS, error_body
from services.gateway.jobs import Gateway
from services.gateway.ratelimit import TokenBuckets, retry_after_header
from services.gateway.webhooks import routes as webhook_routes
from videobg.errors import (
    InvalidRequestBody,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    VideoBgError,
    as_public,
)

log = logging.getLogger(__name__)

access_log = logging.getLogger("services.gateway.access")

REQUEST_ID_HEADER = "X-Request-Id"

OPENAPI_TAGS = [
    {"name": "pixelcut", "description": "Pixelcut's Remove Video Background API. Header `X-API-KEY`."},
    {
        "name": "studio-background",
        "description": "Remove (subject over white) or replace (hex color, image) the background, with "
        "optional trim; MP4 out. Header `X-API-Key` or `Authorization: Bearer`.",
    },
    {
        "name": "removebgvideo",
        "description": "removebgvideo's jobs API: create (or draft, then start) and poll. Header `X-Api-Key`.",
    },
    {"name": "account", "description": "Credits and usage of the calling key's owner."},
    {"name": "internal", "description": "Health and operator views; not a public contract."},
]
DESCRIPTION = """Self-hosted video background removal, speaking three vendors' contracts over one job engine.

Every submit accepts an optional `Idempotency-Key` header: a retry with the same key and body returns the
same job (`Idempotent-Replayed: true`); the same key with another body is refused with 409 `conflict`.
Without the header, an identical body from the same API key within a few minutes (the deployment's
`implicit_idempotency_s`) is the same request too. Every response carries `X-Request-Id`.
Jobs of a key's owner are billed per second of (trimmed) source at the model's rate (`GET /v1/usage`);
each key has a request rate limit (429 with `Retry-After`)."""


def error_response(
    exc: BaseException, request: Request | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    err = as_public(exc)
    body = error_body(request, err) if request is not None else err.to_dict()
    out = dict(headers or {})
    if isinstance(err, RateLimited):
        out["Retry-After"] = retry_after_header(err.retry_after_s)
    # The 500 handler runs outside the middleware: the request id is set here for every error
    if logs.REQUEST_ID.get():
        out[REQUEST_ID_HEADER] = logs.REQUEST_ID.get()
    return JSONResponse(body, status_code=err.spec.http_status, headers=out or None)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, VideoBgError):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(exc, request)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (no route: 404, wrong method: 405) in the shape of the dialect whose path
    was called, like every other error."""
    assert isinstance(exc, StarletteHTTPException)
    err: VideoBgError
    if exc.status_code == 404:
        err = NotFound(f"No route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        err = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}")
    elif exc.status_code >= 500:
        err = VideoBgError("Internal service error")
    else:
        err = InvalidRequestBody(str(exc.detail))
    return error_response(err, request, headers=dict(exc.headers or {}))


class RequestIdMiddleware:
    """Every response carries `X-Request-Id`: the client's (when it is a tame token) or a new one. The id
    is bound for the request's log lines (services/common/logs.py) and read by `create` to store it on
    the job. Pure ASGI, so streamed responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = logs.request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        logs.REQUEST_ID.set(rid)  # left set on purpose: the 500 handler runs after this returns

        started = time.monotonic()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                hdrs = MutableHeaders(scope=message)
                hdrs[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # the access line (uvicorn's is off): method, path (never the query), status, time
            access_log.info(
                "%s %s %d %.1f ms",
                scope.get("method", ""),
                scope.get("path", ""),
                status,
                (time.monotonic() - started) * 1000,
            )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(InvalidRequestBody("The request could not be parsed"), request)


def authenticator(gateway: Gateway) -> ApiKeyAuth:
    """One per gateway process: REST and gRPC share its per-key rate limit."""
    settings = gateway.settings
    return ApiKeyAuth(
        gateway.keys,
        TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst),
        required=settings.auth_required,
        failures=TokenBuckets(settings.auth_failures_per_s, settings.auth_failures_burst),
    )


def build_app(gateway: Gateway, auth: ApiKeyAuth | None = None) -> FastAPI:
    app = FastAPI(
        title="videobg gateway",
        version="1",
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(assets.bind_self)],  # which URLs are this gateway's own (uploads)
    )
    app.state.gateway = gateway
    app.state.authenticator = auth or authenticator(gateway)
    app.add_exception_handler(VideoBgError, _on_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_error)
    app.add_middleware(RequestIdMiddleware)
    for router in ROUTERS.values():
        app.include_router(router)
    app.include_router(usage.router)
    for router in (uploads.router, webhook_routes.router):  # POST /v1/uploads, GET /v1/webhooks/secret
        app.include_router(router)

    @app.get("/healthz", tags=["internal"])
    async def healthz(gw: GatewayDep) -> JSONResponse:
        ok = gw.healthy()
        return JSONResponse({"status": "ok" if ok else "nats disconnected"}, status_code=200 if ok else 503)

    # Internal views (not a public dialect: /v1/jobs belongs to the removebgvideo contract).
    @app.get("/internal/jobs/{job_id}", tags=["internal"])
    async def job_record(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
        job = await gw.get(job_id, caller)
        return {**job.model_dump(mode="json"), "result_url": gw.result_url(job)}

    @app.post("/internal/jobs/{job_id}/cancel", tags=["internal"])
    async def cancel(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
        return (await gw.cancel(job_id, caller)).model_dump(mode="json")

    console.mount(
        app, gateway.settings
    )  # GET / and /console/*: the web console, a client of the routes above

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema without its 422 validation responses: bodies are parsed by hand, and a bad
    request is a 400 with the dialect's error code."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=OPENAPI_TAGS,
        )
        for ops in schema.get("paths", {}).values():
            for op in ops.values():
                op.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
