"""The dialects the gateway serves: each one's router and error shape, by name."""

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
