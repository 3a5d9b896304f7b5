"""GET /v1/webhooks/secret: a caller reads its own signing secret."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.gateway.deps import CallerDep, GatewayDep
from services.gateway.webhooks.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOLERANCE_S,
    master_secret,
    owner_secret,
)

router = APIRouter(tags=["webhooks"])


@router.get("/v1/webhooks/secret")
async def webhook_secret(gw: GatewayDep, caller: CallerDep) -> dict[str, Any]:
    """The caller's webhook signing secret and how signatures are made."""
    return {
        "secret": owner_secret(master_secret(gw.settings), caller.owner),
        "algorithm": "HMAC-SHA256",
        "signed_payload": "{timestamp}.{body}",
        "signature_header": SIGNATURE_HEADER,
        "timestamp_header": TIMESTAMP_HEADER,
        "delivery_header": DELIVERY_HEADER,
        "tolerance_s": TOLERANCE_S,
    }
