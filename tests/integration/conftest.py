"""Integration fixtures: a real nats-server and a real S3 server (SeaweedFS), once per test session.

Both bind 127.0.0.1 on free ports, keep their data under pytest's tmp dir and are stopped by PID at the
end of the session, also when a test fails. `async def` tests run under `asyncio.run` with a per-test
deadline (pytest-asyncio is not needed); fixtures stay synchronous and hand out URLs, so every test makes
its own connections inside its own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from devstack.procs import ServerProc, start_nats, start_seaweedfs
from services.common import bus
from services.common.natsauth import NatsAuth
from services.common.objstore import ObjectStore

# NATS users as in production (services/common/natsauth.py): `nats_url` is the admin user's; the
# services the tests build connect as their own role (`nats_role_url`), so the permissions are exercised.
NATS_AUTH = NatsAuth.generate()
S3_ACCESS_KEY = "vbg-test"
S3_SECRET_KEY = "vbg-test-secret-key"
ASYNC_TEST_TIMEOUT_S = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(asyncio.wait_for(func(**kwargs), ASYNC_TEST_TIMEOUT_S))
    return True


@pytest.fixture(scope="session")
def infra_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infra")


@pytest.fixture(scope="session")
def nats_server(infra_dir: Path) -> Iterator[ServerProc]:
    proc = start_nats(infra_dir / "nats", auth=NATS_AUTH)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: ServerProc) -> str:
    return nats_server.url


def nats_role_url(nats_url: str, role: str) -> str:
    """The session server's URL as one service's NATS user (`role`: gateway, ingest, ...)."""
    return NATS_AUTH.url(nats_url, role)


@pytest.fixture(scope="session")
def s3_server(infra_dir: Path) -> Iterator[ServerProc]:
    proc = start_seaweedfs(infra_dir / "s3", access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: ServerProc) -> str:
    return f"127.0.0.1:{s3_server.port}"


@pytest.fixture(scope="session")
def object_store(s3_endpoint: str) -> ObjectStore:
    """A bucket of its own for this test session."""
    store = ObjectStore(s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, f"vbg-test-{uuid.uuid4().hex[:8]}")
    store.ensure_bucket()
    return store


@pytest.fixture
def uid() -> str:
    """A short unique token for names a test creates (streams, consumers, job ids)."""
    return uuid.uuid4().hex[:10]


@contextlib.asynccontextmanager
async def _jetstream(url: str) -> AsyncIterator[tuple[NatsClient, JetStreamContext]]:
    nc = await bus.connect(url, name="pytest")
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js)
        yield nc, js
    finally:
        await nc.close()


@pytest.fixture
def jetstream(nats_url: str) -> Callable[..., contextlib.AbstractAsyncContextManager]:
    """`async with jetstream() as (nc, js):` a connection to the session's server (or `jetstream(url)`),
    with the project's streams and KV bucket in place; closed on exit."""
    return lambda url=nats_url: _jetstream(url)
