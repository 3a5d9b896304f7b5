"""Metrics export against real nats-server, S3 and gRPC: a job through the stage services, in process, with
their metrics servers on loopback; /metrics scraped over HTTP shows the backlog while no segmenter runs,
then the frames, stage durations, job outcome and readiness, and the queue drained afterwards. The
gateway's /metrics counts a submitted and a cancelled job and shows the backlog of a stage with no worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.procs import free_ports
from services.common.stage_service import Service
from services.compositor import server as compositor
from services.encoder import server as encoder
from services.gateway.server import running
from services.ingest import server as ingest
from services.segmenter import server as segmenter
from tests.integration import gatewaykit
from tests.integration import stagekit as kit
from videobg import metrics
from videobg.settings import CoreSettings

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5.0) as client:
        r = await client.get(url)
    r.raise_for_status()
    assert r.headers["content-type"].startswith("text/plain")
    return {
        key(s.name, **s.labels): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def local(name: str, **labels: str) -> float:
    """The value in this process's registry now (0 for a series not created yet): the baseline, since
    earlier tests in this session ran stages in this process too."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def until(url: str, ok: Callable[[Samples], bool], what: str, timeout: float = 15.0) -> Samples:
    deadline = time.monotonic() + timeout
    samples: Samples = {}
    while time.monotonic() < deadline:
        samples = await scrape(url)
        if ok(samples):
            return samples
        await asyncio.sleep(0.1)
    got = {k: v for k, v in samples.items() if k[0].startswith("videobg_queue") or "ready" in k[0]}
    raise AssertionError(f"/metrics never showed {what} in {timeout:g} s; last: {got}")


@pytest.fixture
def conf(nats_url, s3_endpoint, object_store, models_path):
    def make(cls, **kw):
        if cls is segmenter.SegmenterSettings:
            kw = {"core": CoreSettings(model_dir=models_path, device="cpu"), "chunk_frames": 8, **kw}
        return kit.stage_settings(cls, nats_url, s3_endpoint, object_store, queue_metrics_s=0.2, **kw)

    return make


async def test_job_metrics_scraped(conf, jetstream, nats_url, s3_endpoint, object_store, uid):
    job_id = f"met-{uid}"
    kit.upload(object_store, f"a-{uid}")
    shared_port, comp_port = free_ports(2)
    url = f"http://127.0.0.1:{shared_port}/metrics"
    stages = ("ingest", "segment", "composite", "encode")
    frames0 = {s: local("videobg_frames_total", stage=s) for s in stages}
    runs0 = {s: local("videobg_stage_duration_seconds_count", stage=s) for s in stages}
    ready0 = {s: local("videobg_worker_ready", stage=s) for s in stages}
    done = dict(dialect="grpc", model="light", format="mp4_h264", outcome="completed", error_code="")
    jobs0 = local("videobg_jobs_total", **done)
    video0 = local("videobg_video_seconds_total", model="light")
    infer0 = local("videobg_inference_seconds_count", model="light")
    seg_conf = conf(segmenter.SegmenterSettings, metrics_port=shared_port)

    async with jetstream() as (_, js):
        await kit.purge_work(js)
        async with Service(seg_conf, segmenter.build_server, segmenter.build_worker, name="segmenter"):
            pass  # the durable consumer "segment" now exists, with no segmenter running below
        async with Service(
            conf(compositor.CompositorSettings, metrics_port=comp_port),
            compositor.build_server,
            name="compositor",
        ) as comp:
            enc_conf = conf(encoder.EncoderSettings, compositor_target=comp.target, metrics_port=shared_port)
            async with Service(enc_conf, encoder.build_server, encoder.build_worker, name="encoder"):
                job_spec = kit.spec(source={"asset_id": f"a-{uid}"})
                job = await kit.ingested_job(js, nats_url, s3_endpoint, object_store, job_id, job_spec)
                assert job.status == "processing", job

                # the encoder's process reports the segment backlog: nobody is there to take it, and its
                # age grows from poll to poll (a poll may land as the message is stored and read 0)
                backlog = await until(
                    url,
                    lambda s: (
                        s.get(key("videobg_queue_pending", stage="segment"), 0) >= 1
                        and s.get(key("videobg_queue_oldest_age_seconds", stage="segment"), 0) > 0
                    ),
                    "segment backlog with an age",
                )
                assert backlog[key("videobg_queue_ack_pending", stage="segment")] == 0
                assert backlog[key("videobg_worker_ready", stage="encode")] == ready0["encode"] + 1
                assert backlog[key("videobg_worker_ready", stage="segment")] == ready0["segment"]
                comp_samples = await scrape(f"http://127.0.0.1:{comp_port}/metrics")
                assert comp_samples[key("videobg_worker_ready", stage="composite")] == ready0["composite"] + 1

                # a segmenter on the same metrics port: the process's one server is shared
                async with Service(
                    seg_conf, segmenter.build_server, segmenter.build_worker, name="segmenter"
                ):
                    job = await kit.wait_record(
                        js, job_id, lambda j: j.status in ("completed", "failed"), timeout=40
                    )
                    assert job.status == "completed", job
                    s = await until(
                        url,
                        lambda s: all(
                            s.get(key(f"videobg_queue_{q}", stage=st)) == 0
                            for q in ("pending", "ack_pending")
                            for st in ("segment", "encode")
                        ),
                        "the queues drained",
                    )
                    assert s[key("videobg_worker_ready", stage="segment")] == ready0["segment"] + 1

    for st in ("segment", "composite", "encode"):
        assert s[key("videobg_frames_total", stage=st)] - frames0[st] == kit.CLIP_FRAMES, st
    for st in stages:
        assert s[key("videobg_stage_duration_seconds_count", stage=st)] - runs0[st] >= 1, st
        inf = s[key("videobg_stage_duration_seconds_bucket", stage=st, le="+Inf")]
        assert inf == s[key("videobg_stage_duration_seconds_count", stage=st)], st
    assert s[key("videobg_queue_oldest_age_seconds", stage="segment")] == 0
    assert s[key("videobg_jobs_total", **done)] - jobs0 == 1
    assert s[key("videobg_video_seconds_total", model="light")] - video0 == pytest.approx(job.billed_seconds)
    assert s[key("videobg_inference_seconds_count", model="light")] - infer0 == kit.CLIP_FRAMES
    assert 0 < s[key("videobg_model_load_seconds", model="light", device="cpu")] < 60
    assert s[key("process_resident_memory_bytes")] > 0

    # every service stopped: readiness back where it was, the servers closed
    for st in stages:
        assert local("videobg_worker_ready", stage=st) == ready0[st], st
    for port in (shared_port, comp_port):
        with pytest.raises(httpx.TransportError):
            await scrape(f"http://127.0.0.1:{port}/metrics")
    with contextlib.suppress(Exception):
        async with jetstream() as (_, js):
            await kit.purge_work(js)


async def test_gateway_metrics(conf, jetstream, nats_url, s3_endpoint, object_store, uid):
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/metrics"
    settings = gatewaykit.server_settings(
        nats_url,
        s3_endpoint,
        object_store,
        metrics_port=port,
    )
    labels = dict(dialect="grpc", model="light", format="webm_vp9")
    cancelled = dict(labels, outcome="cancelled", error_code="")
    submitted0 = local("videobg_jobs_submitted_total", **labels)
    cancelled0 = local("videobg_jobs_total", **cancelled)
    async with jetstream() as (_, js):
        await kit.purge_work(js)
        async with Service(
            conf(ingest.IngestSettings), ingest.build_server, ingest.build_worker, name="ingest"
        ):
            pass  # the durable consumer "ingest" exists; no ingest worker runs below
        async with running(settings) as gw:
            spec = kit.spec(source={"asset_id": f"a-{uid}"}, output_format="webm_vp9")
            job = await gw.gateway.submit(spec, idempotency_key=f"metrics-{uid}")
            await gw.gateway.submit(spec, idempotency_key=f"metrics-{uid}")  # the same job: not counted again
            s = await until(
                url, lambda s: s.get(key("videobg_queue_pending", stage="ingest"), 0) >= 1, "ingest backlog"
            )
            assert s[key("videobg_jobs_submitted_total", **labels)] - submitted0 == 1
            await gw.gateway.cancel(job.id)
            await gw.gateway.cancel(job.id)  # a no-op: counted once
            s = await scrape(url)
            assert s[key("videobg_jobs_total", **cancelled)] - cancelled0 == 1
        await kit.purge_work(js)
    with pytest.raises(httpx.TransportError):
        await scrape(url)
