"""Who is calling: the one hook where authentication, credits and rate limits will plug in.

Every route takes `caller: Caller = Depends(resolve_caller)`. Today `app.state.authenticator` is
`Anonymous`, so every request belongs to the anonymous owner. A later issue swaps in an authenticator
that reads `X-API-Key`, looks the key up and raises `Unauthenticated` (401 invalid_auth_token),
`InsufficientCredits` (403) or `RateLimited` (429); the error table turns those into responses, so no
route changes.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import Request

from services.gateway.core import ANONYMOUS, Caller


class Authenticator(Protocol):
    async def __call__(self, request: Request) -> Caller: ...


class Anonymous:
    async def __call__(self, request: Request) -> Caller:
        return ANONYMOUS


async def resolve_caller(request: Request) -> Caller:
    authenticator: Authenticator = getattr(request.app.state, "authenticator", None) or Anonymous()
    return await authenticator(request)
