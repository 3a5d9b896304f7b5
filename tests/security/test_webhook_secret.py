"""The webhook signing secret is one per deployment. Before the fix a gateway without
VBG_GATEWAY_WEBHOOK_SECRET signed with a random secret per process: behind a load balancer each replica
signed the same owner's callbacks differently, and every restart invalidated the secret a customer had
fetched from GET /v1/webhooks/secret, so receivers either failed every check or stopped checking."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.server import running
from services.gateway.settings import GatewaySettings
from services.gateway.webhooks import signing

pytestmark = [pytest.mark.security, pytest.mark.unit]

NOWHERE = "nats://127.0.0.1:9"  # the check comes before any connection


async def _start(settings: GatewaySettings) -> None:
    async with running(settings):
        pass


def test_gateway_taking_keys_refuses_to_start_without_a_deployment_secret() -> None:
    for secret in ("", "short"):
        settings = GatewaySettings(nats_url=NOWHERE, auth_required=True, webhook_secret=secret)
        with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
            asyncio.run(asyncio.wait_for(_start(settings), 60))


def test_replicas_sign_alike_with_the_deployment_secret() -> None:
    secret = "one-secret-for-the-whole-deployment"
    a, b = (GatewaySettings(nats_url=NOWHERE, webhook_secret=secret) for _ in range(2))
    owner_a = signing.owner_secret(signing.master_secret(a), "acme")
    owner_b = signing.owner_secret(signing.master_secret(b), "acme")
    assert owner_a == owner_b
    assert owner_a != signing.owner_secret(signing.master_secret(a), "other")
    body, ts = b'{"event":"job.completed"}', 1_700_000_000
    assert signing.sign(owner_a, ts, body) == signing.sign(owner_b, ts, body)
