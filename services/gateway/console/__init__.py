"""The web console: static files (HTML, CSS, one script) that the gateway serves beside its API.

    GET /                 the console page (index.html)
    GET /console/{file}   its stylesheet, script and the model table (models.json)

The page is an ordinary client of the public API: the removebgvideo dialect (`POST /v1/jobs`,
`GET /v1/jobs/{id}`, `GET /v1/jobs` listing, `DELETE /v1/jobs/{id}` to cancel), `POST /v1/uploads` and
`GET /v1/usage`, with the key in the `X-Api-Key` header. Nothing here is a private shortcut: the files are
static and carry no server-side state.

Every console response carries a Content-Security-Policy that allows script, style and fetches from this
origin only (no inline script, no third-party origin, no CDN: the page works offline). Media and the
result download may also come from the service's own object store, whose presigned URLs are where results
are played and downloaded from; that origin is read from the gateway's settings, never from a request.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.settings import ServiceSettings

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console"


def storage_origin(settings: ServiceSettings) -> str:
    """scheme://host[:port] of the presigned URLs clients get (the public endpoint when one is set)."""
    endpoint = settings.s3_public_endpoint or settings.s3_endpoint
    if "://" in endpoint:
        return endpoint.rstrip("/")
    return f"{'https' if settings.s3_secure else 'http'}://{endpoint}"


def content_security_policy(settings: ServiceSettings) -> str:
    storage = storage_origin(settings)
    media = f"'self' blob: {storage}"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"connect-src 'self' {storage}",  # the result's download (a fetch, so it can be saved by name)
            f"img-src {media}",
            f"media-src {media}",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


class _ConsoleHeaders:
    """Adds the policy headers to responses of the console's paths (the API's answers stay as they are)."""

    def __init__(self, app: ASGIApp, csp: str):
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            # the files change with the gateway's version; a browser must not keep an old script
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != "/" and path != "/index.html" and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount(app: FastAPI, settings: ServiceSettings) -> None:
    """`/` and `/console/*`; mounted at a prefix of its own, so an unknown API path still answers the
    API's JSON 404 instead of a static file server's."""

    @app.get("/", include_in_schema=False)
    @app.get("/index.html", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount(PREFIX, StaticFiles(directory=STATIC), name="console")
    app.add_middleware(_ConsoleHeaders, csp=content_security_policy(settings))
