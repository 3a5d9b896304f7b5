"""The one process lifecycle of every service main (gateway, ingest, segmenter, compositor, encoder):
logging -> start -> serve until SIGTERM/SIGINT (or until the service's own loop dies) -> drain -> exit code.

    raise SystemExit(lifecycle.main(Service(IngestSettings(), build_server, build_worker, name="ingest")))
    raise SystemExit(lifecycle.main(GatewayService(GatewaySettings())))

A service is anything with the `Lifecycle` shape: the stage services' `stage_service.Service`, the gateway's
`server.GatewayService`. Tests run the same objects in-process (`async with`), without this module.

Exit codes: 0 after a clean drain; 1 if a dependency (NATS, S3) could not be reached at start (one line
saying which, no traceback) or the service's loop died.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from typing import Protocol

from services.common import logs
from videobg.errors import Transient

log = logging.getLogger(__name__)

WARMUP_JOIN_S = 2.0  # at exit, how long a still-running warm-up (a model load) is waited for


class LifecycleSettings(Protocol):
    @property
    def log_level(self) -> str: ...

    @property
    def log_format(self) -> str: ...


class Lifecycle(Protocol):
    """What `main` needs of a service."""

    name: str
    warmup_thread: threading.Thread | None  # a daemon thread that may still be in native code at exit

    @property
    def settings(self) -> LifecycleSettings: ...

    async def start(self) -> None:
        """Connect and begin serving; raises Transient when a dependency is unreachable."""

    def request_stop(self) -> None:
        """Begin a graceful stop (called from the signal handler)."""

    async def wait(self) -> bool:
        """Until a stop is requested (True) or the service's own loop died (False)."""

    async def stop(self) -> None:
        """Drain and release everything `start` took."""


async def serve(service: Lifecycle) -> int:
    """Start, serve until a signal (or the loop's death), stop; the exit code."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    await service.start()
    try:
        clean = await service.wait()
        if not clean:
            log.error("%s: its loop ended unexpectedly; shutting down", service.name)
    finally:
        await service.stop()
    return 0 if clean else 1


def main(service: Lifecycle) -> int:
    """Run one service as this process until SIGTERM/SIGINT; the process's exit code."""
    logs.setup_logging(service.settings.log_level, service.name, service.settings.log_format)
    try:
        code = asyncio.run(serve(service))
    except Transient as e:  # NATS or S3 unreachable at start: say so in one line
        log.error("%s: cannot start: %s", service.name, e)
        code = 1
    thread = service.warmup_thread
    if thread is not None:
        thread.join(WARMUP_JOIN_S)
        if thread.is_alive():
            # the drain is done; a warm-up still inside torch's native code would abort the interpreter's
            # exit ("terminate called without an active exception", SIGABRT), so leave without it
            log.warning("%s: warm-up still running at exit; leaving without it", service.name)
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code
