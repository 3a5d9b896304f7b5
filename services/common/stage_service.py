"""A stage service (ingest, segmenter, compositor, encoder) as one object the process lifecycle
(services/common/lifecycle.py) runs: settings -> NATS + S3 -> gRPC server (+ JetStream worker).

Shutdown (SIGTERM/SIGINT): health turns NOT_SERVING, the worker stops fetching and the job in hand gets
`drain_grace_s` to finish. After that `Deps.shutdown` is set: stage code checks it between frames and
raises Transient, so the message is nak'ed (handed back to a replica) instead of failing the job. Then the
gRPC server stops (in-flight streams get the rest of the grace) and the NATS connection drains.

Metrics: readiness (WORKER_READY) by `Service`; with `metrics_port` set the process serves /metrics, and a
worker refreshes the JetStream queue gauges (`services/common/metrics.py`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from services.common import bus
from services.common import metrics as service_metrics
from services.common.jobrun import Deps, connect
from services.common.settings import StageSettings
from services.common.stage_wiring import BuildServer, BuildWorker
from videobg import metrics
from videobg.pipeline import frame_process_defaults

log = logging.getLogger(__name__)


class Service:
    """One stage service: gRPC server plus (optionally) its JetStream worker, on one NATS connection.

    `async with Service(settings, build_server, build_worker, name=...) as svc:` runs it in-process
    (tests); `main` runs it as a process with signal handling.
    """

    def __init__(
        self,
        settings: StageSettings,
        build_server: BuildServer,
        build_worker: BuildWorker | None = None,
        *,
        name: str,
        warmup: Callable[[Any, Deps], None] | None = None,
    ):
        self.settings = settings
        self.name = name
        self._build_server = build_server
        self._build_worker = build_worker
        self._warmup = warmup
        self.deps: Deps | None = None
        self.server: grpc.Server | None = None
        self.port = 0
        self.worker: bus.Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.stage = service_metrics.stage_of(name)
        self.metrics: service_metrics.MetricsServer | None = None
        self.queue_monitor: service_metrics.QueueMonitor | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._ready = False
        self.warmup_thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"{self.settings.grpc_host}:{self.port}"

    async def start(self) -> None:
        frame_process_defaults()  # OpenCV one thread a call, freed frames kept in the heap: as the CLI
        metrics.init_stage(self.stage)
        self.metrics = service_metrics.start_server(self.settings)
        try:
            self.deps = deps = await connect(self.settings, self.name)
        except BaseException:
            self._stop_metrics()
            raise
        try:
            self.server, self.port = self._build_server(self.settings, deps)
            self.server.start()
            if self._build_worker is not None:
                self.worker = self._build_worker(self.settings, deps)
                await self.worker.start()
                self._worker_task = asyncio.create_task(self.worker.run(), name=f"{self.name}-worker")
                if self.settings.queue_metrics_s > 0:
                    self.queue_monitor = service_metrics.QueueMonitor(
                        deps.js, interval_s=self.settings.queue_metrics_s
                    )
                    self._monitor_task = self.queue_monitor.start()
        except BaseException:
            await service_metrics.stop_task(self._monitor_task)
            if self.server is not None:
                self.server.stop(None)
            await deps.close()
            self._stop_metrics()
            raise
        self._set_ready(True)
        if self._warmup is not None:
            # a daemon thread, not the loop's executor: a SIGTERM during a slow warm-up (a cold model
            # load) must not wait for it at exit, since asyncio.run joins its executor's threads
            self.warmup_thread = threading.Thread(
                target=self._run_warmup, args=(deps,), name=f"{self.name}-warmup", daemon=True
            )
            self.warmup_thread.start()
        log.info(
            "%s serving gRPC on %s (worker: %s)",
            self.name,
            self.target,
            self.worker.durable if self.worker else "none",
        )

    def _run_warmup(self, deps: Deps) -> None:
        assert self._warmup is not None
        try:
            self._warmup(self.settings, deps)
        except Exception:  # a job that needs what failed reports it; the service still serves
            log.exception("%s: warm-up failed", self.name)

    def _set_ready(self, ready: bool) -> None:
        if ready != self._ready:
            self._ready = ready
            metrics.WORKER_READY.labels(stage=self.stage).inc(1 if ready else -1)

    def _stop_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None

    def request_stop(self) -> None:
        """Begin a graceful stop (signal-handler safe)."""
        if not self._stop.is_set():
            log.info("%s: stop requested; draining", self.name)
        self._stop.set()
        self._set_ready(False)
        if self.worker is not None:
            self.worker.stop()

    async def wait(self) -> bool:
        """Until a stop is requested (True) or the worker loop died (False)."""
        waiter = asyncio.create_task(self._stop.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if self._worker_task is not None:
            tasks.add(self._worker_task)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        task = self._worker_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("%s: worker loop died: %r", self.name, exc, exc_info=exc)
        return self._stop.is_set()

    async def stop(self) -> None:
        """Drain: NOT_SERVING, finish (or after drain_grace_s hand back) the job in hand, stop gRPC, close NATS."""
        deps = self.deps
        if deps is None:
            return
        self.request_stop()
        if deps.health is not None:
            deps.health.enter_graceful_shutdown()
        t_end = time.monotonic() + self.settings.drain_grace_s
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._worker_task), self.settings.drain_grace_s)
            except TimeoutError:
                log.warning(
                    "%s: job still running after %.0f s; handing it back",
                    self.name,
                    self.settings.drain_grace_s,
                )
                deps.shutdown.set()
                try:
                    await asyncio.wait_for(self._worker_task, 30.0)
                except TimeoutError:
                    log.error(
                        "%s: worker did not stop; abandoning its message (redelivered after ack_wait)",
                        self.name,
                    )
            except Exception:
                log.exception("%s: worker loop failed", self.name)
        if self.server is not None:
            grace = max(1.0, t_end - time.monotonic())
            stopped = self.server.stop(grace)
            # in-flight streams get the grace; then stage code sees the shutdown and ends them
            await asyncio.to_thread(stopped.wait, grace)
            deps.shutdown.set()
            await asyncio.to_thread(stopped.wait, 5.0)
        deps.shutdown.set()
        await service_metrics.stop_task(self._monitor_task)
        self._monitor_task = None
        await deps.close()
        self.deps = None
        self._stop_metrics()
        log.info("%s stopped", self.name)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
