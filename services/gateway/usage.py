"""`GET /v1/usage`: the caller's credits and jobs, whatever dialect it submits in.

    200 {"owner", "key_id", "metered",
         "credits": {"balance", "reserved", "available", "used", "open_reservations"} | null (no key),
         "credits_per_minute": {model: rate}, "default_model",
         "jobs": {"total", "by_status": {status: n}}, "billed_seconds"}

Reservations of jobs that have ended are settled before the answer, so `used` and `balance` include
every completed job. Errors use the house shape {"error", "error_code"}.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.dialects import pixelcut
from services.gateway.dialects.body import error_responses

router = APIRouter(tags=["account"])


class CreditsView(BaseModel):
    balance: float = Field(description="Credits granted minus credits charged")
    reserved: float = Field(description="Held by jobs that are running")
    available: float = Field(description="balance - reserved: what a new job may reserve")
    used: float = Field(description="Credits charged so far")
    open_reservations: int


class JobsView(BaseModel):
    total: int
    by_status: dict[str, int] = Field(examples=[{"completed": 3, "failed": 1, "processing": 1}])


class Usage(BaseModel):
    owner: str
    key_id: str | None
    metered: bool = Field(description="false for the anonymous owner (no key, auth off): no credits")
    credits: CreditsView | None
    credits_per_minute: dict[str, float] = Field(
        examples=[{"original": 60, "light": 45, "human": 45, "pro": 180}]
    )
    default_model: str = Field(description="The model jobs that name none run with")
    jobs: JobsView
    billed_seconds: float = Field(description="Seconds of source billed over the completed jobs")


_ERRORS = error_responses(
    pixelcut.PixelcutError,
    {
        401: {"error": "API Token not found", "error_code": "invalid_auth_token"},
        429: {"error": "Too many requests", "error_code": "rate_limit_exceeded"},
    },
)


@router.get(
    "/v1/usage",
    summary="Credits balance, usage and jobs by status of the caller",
    response_model=Usage,
    responses=_ERRORS,
)
async def usage(gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    return await gw.usage(caller)
