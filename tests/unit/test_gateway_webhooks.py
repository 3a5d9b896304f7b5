"""The webhook dispatcher's fetch loop, with a fake subscription (no NATS)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import nats.errors
import pytest

from services.gateway.settings import GatewaySettings
from services.gateway.webhooks.dispatch import Dispatcher

pytestmark = pytest.mark.unit


class FlakySub:
    """fetch: the builtin TimeoutError (what nats-py's batch fetch raises when its deadline runs out between
    its two pull requests), then nats' own TimeoutError, then nothing more to do: the test ends the loop."""

    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, batch: int, timeout: float) -> list:
        self.calls += 1
        if self.calls == 1:
            raise TimeoutError  # builtin, not nats.errors.TimeoutError
        if self.calls == 2:
            raise nats.errors.TimeoutError
        raise asyncio.CancelledError  # stands for the gateway stopping the dispatcher

    async def unsubscribe(self) -> None:
        pass


def test_fetch_loop_survives_a_builtin_timeout() -> None:
    async def main() -> int:
        gateway = SimpleNamespace(settings=GatewaySettings(), jobs=None)
        dispatcher = Dispatcher(gateway)  # type: ignore[arg-type]
        sub = FlakySub()
        try:
            with pytest.raises(asyncio.CancelledError):
                await dispatcher.run(sub)  # type: ignore[arg-type]
        finally:
            await dispatcher.close(grace_s=0.0)
        return sub.calls

    assert asyncio.run(main()) == 3
