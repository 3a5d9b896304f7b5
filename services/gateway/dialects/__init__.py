"""Public REST dialects. Each is one module with a FastAPI `router` that translates its contract's
requests into `jobspec` dicts and its responses out of job records; adding a dialect is a new module
here plus one entry in ROUTERS (studio-background and removebgvideo come next)."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.dialects import pixelcut

ROUTERS: dict[str, APIRouter] = {
    pixelcut.NAME: pixelcut.router,
}
