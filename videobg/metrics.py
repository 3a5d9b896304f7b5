"""The one catalogue of Prometheus metrics every videobg process exports (prometheus-client).

Names follow Prometheus conventions: the `videobg_` prefix, base units (seconds, bytes), `_total` on
counters, `_seconds` on durations. Labels stay low-cardinality: stage, model, device, dialect, format,
outcome, error_code; never a job id. Label values that come from a job record go through `_bounded`, so a
strange value cannot create unbounded series.

Stage names (the `stage` label) are those of `Deps.run_stage`: ingest, segment, composite, encode.

The metrics live in their own `REGISTRY` (plus the process, platform and GC collectors), not in
prometheus-client's global one: what a process exports is exactly this list, and the unit test can check
every dashboard and alert expression against it. `services/common/metrics.py` serves it over HTTP.

Who updates what:
    JOBS_SUBMITTED             gateway, when it creates a job record
    JOBS, VIDEO_SECONDS        job outcomes through `count_job`: jobrun.fail_job (failed), encoder
                               (completed), gateway (cancelled; failed when the work cannot be queued)
    STAGE_DURATION/FAILURES    jobrun.Deps.run_stage / StageRun.measured (every stage, worker or gRPC)
    FRAMES                     the segment, composite and encode frame loops
    QUEUE_*                    services/common/metrics.QueueMonitor (every worker and the gateway)
    REDELIVERIES               stage_wiring.stage_worker, on each delivery with num_delivered > 1
    WORKER_READY               stage_service.Service (1 while a process serves its stage, 0 while draining)
    MODEL_LOAD, INFERENCE      services/segmenter/stage.py
    GPU_MEMORY                 `sample_gpu_memory`, called by the QueueMonitor loop in every worker
    WEBHOOK_DELIVERIES         services/gateway/webhooks/dispatch.py, per delivery attempt (delivered / failed)
    CREDITS_CHARGED            services/gateway/credits.py, when a finished job's reservation is settled
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from videobg.errors import ERROR_TABLE
from videobg.media.formats import ALIASES, FORMATS

NAMESPACE = "videobg"
STAGES = ("ingest", "segment", "composite", "encode")
FRAME_STAGES = ("segment", "composite", "encode")  # the stages that count frames (FRAMES)
OUTCOMES = ("completed", "failed", "cancelled")

# no `*_created` series beside every counter and histogram: they double the series and no panel uses them
disable_created_metrics()
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Stages run from a fraction of a second (ingest of a short upload) to the stage deadline (900 s).
STAGE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800)
# One predict call: ~2 ms (small model on a GPU) to seconds (4K on a CPU).
INFERENCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

JOBS_SUBMITTED = Counter(
    "jobs_submitted",
    "Jobs accepted by the gateway (a repeated idempotency key is not counted again).",
    ["dialect", "model", "format"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
JOBS = Counter(
    "jobs",
    "Jobs that reached a final state, by dialect, model, output format, outcome and error code.",
    ["dialect", "model", "format", "outcome", "error_code"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
VIDEO_SECONDS = Counter(
    "video_seconds",
    "Seconds of source video (after trim) in completed jobs.",
    ["model"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
STAGE_DURATION = Histogram(
    "stage_duration_seconds",
    "Wall time of one successful stage run of one job.",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
    buckets=STAGE_BUCKETS,
)
STAGE_FAILURES = Counter(
    "stage_failures",
    "Stage runs that raised, by stage and public error code (retried attempts included).",
    ["stage", "error_code"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
FRAMES = Counter(
    "frames",
    "Frames processed, by stage (segment: matted, composite: composited, encode: encoded).",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
QUEUE_PENDING = Gauge(
    "queue_pending",
    "Work messages waiting for the stage's consumer (JetStream num_pending); the same value from "
    "every process that reports it: aggregate with max.",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
QUEUE_ACK_PENDING = Gauge(
    "queue_ack_pending",
    "Work messages delivered and not yet acknowledged, i.e. jobs in hand (JetStream num_ack_pending).",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
QUEUE_REDELIVERED = Gauge(
    "queue_redelivered",
    "Unacknowledged messages delivered more than once (JetStream num_redelivered).",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
QUEUE_OLDEST_AGE = Gauge(
    "queue_oldest_age_seconds",
    "Age of the oldest message on the stage's work subject (waiting or in hand); 0 when there is none.",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
REDELIVERIES = Counter(
    "redeliveries",
    "Deliveries of a work message after its first (a retry after a failure, or a worker that died).",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
WORKER_READY = Gauge(
    "worker_ready",
    "Stage services in this process that are serving (1) and not draining.",
    ["stage"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
MODEL_LOAD = Gauge(
    "model_load_seconds",
    "Seconds the last load of the model took in this process (checksum, graph, move to the device).",
    ["model", "device"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
INFERENCE = Histogram(
    "inference_seconds",
    "Wall time of one matting predict call (one frame, post-processing included).",
    ["model"],
    namespace=NAMESPACE,
    registry=REGISTRY,
    buckets=INFERENCE_BUCKETS,
)
GPU_MEMORY = Gauge(
    "gpu_memory_bytes",
    "CUDA memory of this process: allocated (live tensors), reserved (held by torch's caching "
    "allocator), total (the device). Only where torch has initialised CUDA.",
    ["device", "kind"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries",
    "Webhook delivery attempts by outcome (delivered, failed).",
    ["outcome"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)
CREDITS_CHARGED = Counter(
    "credits_charged",
    "Credits charged to callers, by dialect and model.",
    ["dialect", "model"],
    namespace=NAMESPACE,
    registry=REGISTRY,
)

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


def _bounded(value: Any, known: Mapping[str, Any] | None = None, default: str = "") -> str:
    """A label value from data: one of `known` (when given) or a short lowercase token, else "other"."""
    v = str(value or default).strip().lower()
    if not v:
        return ""
    if known is not None:
        return v if v in known else "other"
    return v if _TOKEN.fullmatch(v) else "other"


def job_labels(dialect: str | None, model: str | None, fmt: str | None) -> dict[str, str]:
    """The bounded `dialect`, `model` and `format` labels of a job (its record gives the three values:
    services/common/metrics.py)."""
    fmt = fmt or "mp4_h264"
    return {
        "dialect": _bounded(dialect, default="unknown"),
        "model": _bounded(model, default="default"),
        "format": _bounded(ALIASES.get(fmt, fmt), FORMATS),
    }


def count_job(
    labels: Mapping[str, str], outcome: str, error_code: str = "", billed_seconds: float = 0.0
) -> None:
    """Count one job (`labels` from job_labels) reaching `outcome` (completed | failed | cancelled). Call
    it where the status change happened (the compare-and-set that won), so each job is counted once."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    code = _bounded(error_code, ERROR_TABLE) if outcome == "failed" else ""
    JOBS.labels(**labels, outcome=outcome, error_code=code).inc()
    if outcome == "completed" and billed_seconds > 0:
        VIDEO_SECONDS.labels(model=labels["model"]).inc(billed_seconds)


def init_stage(stage: str) -> None:
    """Create a stage's series at 0 when its service starts (a name that is not a stage: nothing). A child
    otherwise appears on its first update, already holding it, and `rate()`/`increase()` see no change in
    a series that starts at 3: the first jobs after a start would be missing from the board (the live
    Prometheus test found the ingest latency panel empty after a batch)."""
    if stage not in STAGES:
        return
    STAGE_DURATION.labels(stage=stage)
    REDELIVERIES.labels(stage=stage)
    if stage in FRAME_STAGES:
        FRAMES.labels(stage=stage)


def sample_gpu_memory() -> None:
    """Set GPU_MEMORY for every CUDA device, if this process uses CUDA. Never imports torch (services
    without a model must not pay for it) and never initialises CUDA itself."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    for i in range(torch.cuda.device_count()):
        device = f"cuda:{i}"
        GPU_MEMORY.labels(device=device, kind="allocated").set(torch.cuda.memory_allocated(i))
        GPU_MEMORY.labels(device=device, kind="reserved").set(torch.cuda.memory_reserved(i))
        GPU_MEMORY.labels(device=device, kind="total").set(torch.cuda.get_device_properties(i).total_memory)
