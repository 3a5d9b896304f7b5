"""One gateway process: REST (uvicorn) and gRPC `Jobs` (grpc.aio) in one event loop, one NATS connection.

Tests and the process (`GatewayService`, run by services/common/lifecycle.py) start it the same way:

    async with running(settings) as gw:        # ports 0 in tests: gw.http_port / gw.grpc_port
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn

from services.common import bus
from services.common import metrics as service_metrics
from services.common.jobstore import JobStore
from services.gateway.grpc_api import start_grpc
from services.gateway.jobs import Gateway
from services.gateway.rest import authenticator, build_app
from services.gateway.settings import GatewaySettings, check_deployable
from services.gateway.webhooks.dispatch import dispatching

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """Signals belong to the process's owner (`serve`, or the test), not to uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningGateway:
    gateway: Gateway
    host: str
    http_port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without it a keep-alive client waits ~40 ms per response: uvicorn
    # writes headers and body separately, and Nagle holds the body until the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def _http(app: object, settings: GatewaySettings) -> AsyncIterator[int]:
    sock = _listen(settings.http_host, settings.http_port)
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan="off",
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=2,
        log_config=None,  # uvicorn's lines go through the process's JSON logging (services/common/logs.py)
    )
    server = _Uvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the startup error
                raise RuntimeError("uvicorn stopped while starting")
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@contextlib.asynccontextmanager
async def running(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    check_deployable(settings)
    metrics_server = service_metrics.start_server(settings)  # None unless metrics_port is set
    try:
        nc = await bus.connect(
            settings.nats_url,
            name="gateway",
            pending_size=0,
            user=settings.nats_user,
            password=settings.nats_password,
        )
    except BaseException:
        if metrics_server is not None:
            metrics_server.stop()
        raise
    queue_metrics = None
    try:
        js = nc.jetstream()
        await bus.ensure_streams(js, settings.nats_replicas, job_retention_s=settings.job_retention_s)
        objects = settings.object_store()
        gateway = Gateway(settings, nc, js, JobStore(js), objects)
        # the gateway always runs: its queue gauges show the backlog of stages scaled to zero
        queue_metrics = service_metrics.QueueMonitor(js).start()
        await gateway.start_background()  # settles the credits of jobs that ended
        try:
            auth = authenticator(gateway)
            grpc_server, grpc_port = await start_grpc(gateway, auth, settings.grpc_host, settings.grpc_port)
            try:
                app = build_app(gateway, auth)
                async with dispatching(gateway), _http(app, settings) as http_port:
                    yield RunningGateway(gateway, settings.http_host, http_port, grpc_port)
            finally:
                await grpc_server.stop(grace=2.0)
        finally:
            await gateway.stop_background()
    finally:
        await service_metrics.stop_task(queue_metrics)
        with contextlib.suppress(Exception):
            await nc.drain()
        if metrics_server is not None:
            metrics_server.stop()


class GatewayService:
    """The gateway as the process lifecycle runs it (services/common/lifecycle.py, like every stage
    service): `start` enters `running`, `stop` leaves it (stop taking requests, finish those in flight)."""

    name = "gateway"

    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        self.warmup_thread: threading.Thread | None = None  # the gateway loads no model
        self.running: RunningGateway | None = None
        self._stop = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        self.running = gw = await stack.enter_async_context(running(self.settings))
        self._stack = stack
        log.info("gateway REST on %s, gRPC Jobs on %s", gw.url, gw.grpc_target)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> bool:
        await self._stop.wait()
        return True

    async def stop(self) -> None:
        stack, self._stack, self.running = self._stack, None, None
        if stack is not None:
            await stack.aclose()
            log.info("gateway stopped")
