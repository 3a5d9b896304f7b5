"""Serving the metrics of `videobg.metrics` from a service process, and the JetStream queue gauges.

    server = start_server(settings)       # /metrics on settings.grpc_host:settings.metrics_port (> 0)
    ...
    server.stop()

Several services in one process (tests, an all-in-one stack) share the process's registry, so a second
`start_server` on the same address reuses the running server; it stops when its last user stops it.

`QueueMonitor` polls JetStream consumer info for every stage's durable consumer (not only its own: a
stage scaled to zero replicas still shows its backlog through the others) and sets the queue gauges.
Every process that runs one reports the same figures, so dashboards aggregate them with `max by (stage)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from prometheus_client import start_http_server

from services.common.record import Job
from videobg import metrics, nats_subjects

log = logging.getLogger(__name__)


def job_labels(job: Job) -> dict[str, str]:
    """The bounded dialect/model/format labels of a job record."""
    return metrics.job_labels(*job.metric_labels())


def count_job(job: Job, outcome: str, error_code: str = "") -> None:
    """videobg.metrics.count_job for a record: call it where the status change won its compare-and-set."""
    metrics.count_job(job_labels(job), outcome, error_code, billed_seconds=job.billed_seconds or 0.0)


# service name (`Service(name=...)`) -> its `stage` label
STAGE_OF_SERVICE = {
    "ingest": "ingest",
    "segmenter": "segment",
    "compositor": "composite",
    "encoder": "encode",
}
# work subject -> stage label; the durable consumer names are the stage names
STAGE_OF_SUBJECT = dict(nats_subjects.CONSUMERS)


def stage_of(service: str) -> str:
    return STAGE_OF_SERVICE.get(service, service)


# --- the /metrics HTTP server --------------------------------------------------------------------------


@dataclass
class _Running:
    httpd: Any
    thread: threading.Thread
    users: int = 0


_servers: dict[tuple[str, int], _Running] = {}
_servers_lock = threading.Lock()


@dataclass
class MetricsServer:
    host: str
    port: int
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        with _servers_lock:
            if self._stopped:
                return
            self._stopped = True
            running = _servers.get((self.host, self.port))
            if running is None:
                return
            running.users -= 1
            if running.users > 0:
                return
            del _servers[(self.host, self.port)]
        running.httpd.shutdown()
        running.httpd.server_close()
        running.thread.join(timeout=5.0)


def start_server(settings: Any) -> MetricsServer | None:
    """Serve `videobg.metrics.REGISTRY` on `settings.grpc_host:settings.metrics_port`; None when the port
    is 0 (no metrics server). Raises OSError if the port is taken by something else."""
    port = int(getattr(settings, "metrics_port", 0) or 0)
    if port <= 0:
        return None
    host = settings.grpc_host
    with _servers_lock:
        running = _servers.get((host, port))
        if running is None:
            httpd, thread = start_http_server(port, addr=host, registry=metrics.REGISTRY)
            running = _servers[(host, port)] = _Running(httpd, thread)
            log.info("metrics on http://%s:%d/metrics", host, port)
        running.users += 1
    return MetricsServer(host, port)


# --- JetStream queue gauges ----------------------------------------------------------------------------


class QueueMonitor:
    """Every `interval_s`: consumer info of each work consumer -> QUEUE_* gauges, and GPU memory.

    One failed poll (NATS reconnecting, a consumer not created yet) leaves the previous values; a
    consumer that does not exist yet reports nothing."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        interval_s: float = 5.0,
        stream: str = nats_subjects.WORK_STREAM,
        consumers: dict[str, str] | None = None,  # work subject -> durable consumer
    ):
        self.js = js
        self.interval_s = interval_s
        self.stream = stream
        self.consumers = dict(nats_subjects.CONSUMERS if consumers is None else consumers)
        self.polls = 0  # completed polls (tests wait on it)

    async def poll(self) -> None:
        for subject, durable in self.consumers.items():
            stage = STAGE_OF_SUBJECT.get(subject, durable)
            try:
                info = await self.js.consumer_info(self.stream, durable)
            except nats.js.errors.NotFoundError:
                continue
            metrics.QUEUE_PENDING.labels(stage=stage).set(info.num_pending or 0)
            metrics.QUEUE_ACK_PENDING.labels(stage=stage).set(info.num_ack_pending or 0)
            metrics.QUEUE_REDELIVERED.labels(stage=stage).set(info.num_redelivered or 0)
            floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
            metrics.QUEUE_OLDEST_AGE.labels(stage=stage).set(await self._oldest_age(subject, floor + 1))
        metrics.sample_gpu_memory()
        self.polls += 1

    async def _oldest_age(self, subject: str, from_seq: int) -> float:
        """Seconds since the oldest message on `subject` was stored. The stream is a work queue, so
        every message still in it is waiting or in hand: acked and terminated ones are deleted."""
        try:
            msg = await self.js.get_msg(self.stream, seq=max(from_seq, 1), subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return 0.0
        if msg.time is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - msg.time).total_seconds())

    async def run(self) -> None:
        while True:
            t0 = time.monotonic()
            try:
                await self.poll()
            except (nats.errors.Error, nats.js.errors.Error, OSError) as e:
                log.debug("queue metrics poll failed: %r", e)
            except Exception:  # a metrics bug must not take the service down
                log.exception("queue metrics poll failed")
            await asyncio.sleep(max(0.05, self.interval_s - (time.monotonic() - t0)))

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(), name="queue-metrics")


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
