"""Public REST dialects. Each is one module with a FastAPI `router` (its routes of class
`body.route_class(NAME)`) that translates its contract's requests into a `JobSpec` (services/common/record.py) and its responses
out of job records, and an `error_body(err)` that writes an error in the contract's shape. Adding a
dialect is a new module here plus one entry in DIALECTS.

    pixelcut         {"error": message, "error_code": code}
    studio-background {"status": "error", "error": {"code", "message"}}
    removebgvideo    {"success": false, "error": {"code", "message"}}

Routes of no dialect (health, usage, internal views) use the Pixelcut shape, the house default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from services.gateway.dialects import pixelcut, removebgvideo, studio
from services.gateway.dialects.body import dialect_of
from videobg.errors import VideoBgError

DIALECTS = (pixelcut, studio, removebgvideo)
ROUTERS: dict[str, APIRouter] = {d.NAME: d.router for d in DIALECTS}
ERROR_BODIES: dict[str, Callable[[VideoBgError], dict[str, Any]]] = {d.NAME: d.error_body for d in DIALECTS}


def error_body(request: Request, err: VideoBgError) -> dict[str, Any]:
    """The error in the shape of the dialect whose route raised it."""
    return ERROR_BODIES.get(dialect_of(request), pixelcut.error_body)(err)
