"""Who is calling: API keys, then the per-key rate limit.

Every route takes `caller: Caller = Depends(resolve_caller)`, which asks `app.state.authenticator`.
`ApiKeyAuth` reads the key from `X-API-Key` (the Pixelcut and removebgvideo header; header names are
case-insensitive, so `X-Api-Key` and `X-API-KEY` are the same) or from `Authorization: Bearer <key>`,
verifies it against the key store and takes a token from the key's bucket. Errors are typed:
`Unauthenticated` (401 invalid_auth_token) and `RateLimited` (429 with Retry-After); the one error
handler in rest.py writes them in the route's dialect. Credits are checked where a job is created
(services/gateway/jobs.py), since only the job knows what it will cost.

With `auth_required` false a request without a key is the anonymous owner: unmetered, not rate limited,
and it sees every job (the local demo stack). A key that is sent is checked all the same.
Keys are logged by id only.
"""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.api_keys import NOT_FOUND_MESSAGE, KeyStore
from services.gateway.caller import ANONYMOUS, Caller
from services.gateway.ratelimit import TokenBuckets
from videobg.errors import RateLimited, Unauthenticated

API_KEY_HEADER = "X-API-Key"
FAILED_AUTH_MESSAGE = "Too many failed authentication attempts from this address; retry later"

# Declared for OpenAPI (/docs shows both schemes and an Authorize button); the value is read below.
_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="`X-API-Key: vbg_<id>_<secret>` (any letter case)"
)
_bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer vbg_<id>_<secret>`")


class Authenticator(Protocol):
    async def __call__(self, request: Request) -> Caller: ...


class Anonymous:
    async def __call__(self, request: Request) -> Caller:
        return ANONYMOUS


def presented_key(request: Request) -> str:
    key = request.headers.get(API_KEY_HEADER, "").strip()
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


class ApiKeyAuth:
    """`failures`: a token bucket per client address, one token per failed authentication. While an
    address's bucket is empty every request from it is refused with 429 before its key is even looked
    at, so guessing keys costs a flood its rate, and a right guess answers like a wrong one."""

    def __init__(
        self,
        keys: KeyStore,
        limiter: TokenBuckets,
        *,
        required: bool = True,
        failures: TokenBuckets | None = None,
    ):
        self.keys = keys
        self.limiter = limiter
        self.required = required
        self.failures = failures or TokenBuckets(0, 0)  # rate 0: off

    async def __call__(self, request: Request) -> Caller:
        peer = request.client.host if request.client else ""
        caller = await self.authenticate(presented_key(request), peer=peer)
        request.state.key_id = caller.key_id  # for logs: the id, never the key
        return caller

    async def authenticate(self, key: str, *, anonymous_allowed: bool = False, peer: str = "") -> Caller:
        """A presented key (REST header or gRPC metadata) -> its owner; no key -> the anonymous owner
        when keys are not required (or `anonymous_allowed`: the gRPC listener an operator trusts).
        `peer`: the client's address, whose failed attempts are rate limited."""
        if peer:
            wait = self.failures.wait(peer)
            if wait > 0:
                raise RateLimited(FAILED_AUTH_MESSAGE, retry_after_s=wait)
        try:
            if not key:
                if self.required and not anonymous_allowed:
                    raise Unauthenticated(NOT_FOUND_MESSAGE)
                return ANONYMOUS
            record = await self.keys.verify(key)
        except Unauthenticated:
            if peer:
                self.failures.take(peer)
            raise
        self.limiter.check(record.id)
        return Caller(owner=record.owner, key_id=record.id)


async def resolve_caller(
    request: Request,
    _key: Annotated[str | None, Security(_api_key_scheme)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)] = None,
) -> Caller:
    authenticator: Authenticator = getattr(request.app.state, "authenticator", None) or Anonymous()
    return await authenticator(request)
