"""The REST app: the dialect routers, health, an internal job view, and the one error translation.

Errors leave as `{"error": message, "error_code": code}` with the HTTP status `videobg.errors.ERROR_TABLE`
names for the code; nothing here picks a status by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.auth import Anonymous
from services.gateway.core import Gateway
from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects import ROUTERS
from videobg.errors import ERROR_TABLE, VideoBgError, as_public

log = logging.getLogger(__name__)


def error_response(exc: BaseException) -> JSONResponse:
    err = as_public(exc)
    return JSONResponse(err.to_dict(), status_code=err.spec.http_status)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, VideoBgError):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else "invalid_request_body"
    if exc.status_code >= 500:
        code = "internal_error"
    return JSONResponse(
        {"error": str(exc.detail), "error_code": code}, status_code=exc.status_code, headers=exc.headers
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"error": "The request could not be parsed", "error_code": "invalid_request_body"},
        status_code=ERROR_TABLE["invalid_request_body"].http_status,
    )


def build_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="videobg gateway", version="1", docs_url="/docs", redoc_url=None)
    app.state.gateway = gateway
    app.state.authenticator = Anonymous()
    app.add_exception_handler(VideoBgError, _on_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_error)
    for router in ROUTERS.values():
        app.include_router(router)

    @app.get("/healthz")
    async def healthz(gw: GatewayDep) -> JSONResponse:
        ok = gw.healthy()
        return JSONResponse({"status": "ok" if ok else "nats disconnected"}, status_code=200 if ok else 503)

    # Internal views (not a public dialect: /v1/jobs belongs to the removebgvideo contract).
    @app.get("/internal/jobs/{job_id}")
    async def job_record(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
        job = await gw.get(job_id, caller)
        return {**job, "result_url": gw.result_url(job)}

    @app.post("/internal/jobs/{job_id}/cancel")
    async def cancel(job_id: str, gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
        return await gw.cancel(job_id, caller)

    return app
