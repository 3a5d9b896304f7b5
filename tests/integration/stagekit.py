"""Helpers shared by the stage-service tests (test_ingest/segmenter/compositor/encoder): settings that
point at the session's nats-server and S3 bucket, jobs, waiting on records and events, service processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import nats.errors
import nats.js.errors
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from devstack.procs import free_ports
from services.common import matte_chunks
from services.common.jobstore import JobStore
from services.common.matte_chunks import MatteChunk
from services.common.objstore import ObjectStore
from services.common.record import BackgroundSpec, Job, JobSpec
from tests.conftest import REPO, media_dir
from tests.integration.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, nats_role_url
from videobg import nats_subjects, object_keys

CLIP = media_dir() / "people" / "androidx_bt601.mov"  # 640x428, 30 frames (1.02 s), AAC mono
CLIP_FRAMES, CLIP_W, CLIP_H = 30, 640, 428
DODGER_BLUE = (30, 144, 255)


def stage_settings(cls: type, nats_url: str, s3_endpoint: str, store: ObjectStore, **kw: Any) -> Any:
    """Settings for an in-process service on the session's servers: fast retries, short deadlines."""
    role = str(cls.model_config.get("env_prefix", "")).removeprefix("VBG_").rstrip("_").lower()
    base: dict[str, Any] = dict(
        # the stage's own NATS user, as deployed; the generic StageSettings (no service) keeps the admin's
        nats_url=nats_role_url(nats_url, role) if role else nats_url,
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=store.bucket,
        grpc_host="127.0.0.1",
        grpc_port=0,
        ack_wait_s=6.0,
        max_deliver=3,
        backoff_s=(0.3,),
        stage_deadline_s=40.0,
        drain_grace_s=5.0,
    )
    base.update(kw)
    return cls(**base)


def service_env(nats_url: str, s3_endpoint: str, store: ObjectStore, **extra: str) -> dict[str, str]:
    """The environment a service process gets: shared VBG_* settings, nothing inherited under VBG_."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VBG_")}
    env.update(
        VBG_NATS_URL=nats_url,
        VBG_S3_ENDPOINT=s3_endpoint,
        VBG_S3_ACCESS_KEY=S3_ACCESS_KEY,
        VBG_S3_SECRET_KEY=S3_SECRET_KEY,
        VBG_S3_BUCKET=store.bucket,
        VBG_ACK_WAIT_S="6",
        VBG_MAX_DELIVER="3",
        VBG_BACKOFF_S="[0.3]",
        VBG_DRAIN_GRACE_S="5",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def spec(**over: Any) -> JobSpec:
    s: dict[str, Any] = {
        "source": {"asset_id": "missing"},
        "trim": {"start": 0.0, "end": None},
        "model": "light",
        "background": {"kind": "color", "rgb": list(DODGER_BLUE), "image": None},
        "output_format": "mp4_h264",
        "webhook_url": "",
        "text_prompt": "",
        "owner": "test",
        "dialect": "grpc",
    }
    s.update(over)
    return JobSpec.model_validate(s).validated()


def with_background(bg: dict[str, Any]) -> Callable[[Job], Job]:
    """A JobStore.update function that gives the job's spec another background."""

    def change(job: Job) -> Job:
        job.spec.background = BackgroundSpec.model_validate(bg)
        return job

    return change


def upload(store: ObjectStore, asset_id: str, path: Path = CLIP) -> str:
    key = object_keys.upload(asset_id)
    store.put_file(key, path)
    return key


async def create_job(js: JetStreamContext, job_id: str, job_spec: JobSpec) -> None:
    await JobStore(js).create(Job(id=job_id, spec=job_spec, owner="test", dialect="grpc"))


async def wait_record(
    js: JetStreamContext, job_id: str, until: Callable[[Job], bool], timeout: float = 30.0
) -> Job:
    jobs = JobStore(js)
    deadline = time.monotonic() + timeout
    job: Job | None = None
    while time.monotonic() < deadline:
        job = await jobs.get(job_id)
        if until(job):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach the expected state in {timeout:g} s; last: {job}")


async def events_of(js: JetStreamContext, job_id: str, idle_s: float = 0.5) -> list[dict[str, Any]]:
    """Every event of the job so far, in order."""
    sub = await js.subscribe(
        nats_subjects.events_subject(job_id),
        stream=nats_subjects.EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    out = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_s)
            except nats.errors.TimeoutError:
                return out
            out.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()


async def work_for(js: JetStreamContext, subject: str, job_id: str) -> list[tuple[dict[str, Any], str]]:
    """(payload, msg id) of every queued message on `subject` for `job_id`."""
    si = await js.stream_info(nats_subjects.WORK_STREAM)
    found = []
    seq = si.state.first_seq
    while seq and seq <= si.state.last_seq:
        try:
            msg = await js.get_msg(nats_subjects.WORK_STREAM, seq=seq, subject=subject, next=True)
        except nats.js.errors.NotFoundError:  # no further message on that subject
            break
        payload = json.loads(msg.data or b"{}")
        if payload.get("job_id") == job_id:
            found.append((payload, (msg.headers or {}).get("Nats-Msg-Id", "")))
        seq = (msg.seq or seq) + 1
    return found


async def purge_work(js: JetStreamContext) -> None:
    """Leave no work from one test for the next one's workers."""
    for subject in nats_subjects.WORK_SUBJECTS:
        await js.purge_stream(nats_subjects.WORK_STREAM, subject=subject)


def health(target: str, timeout: float = 2.0) -> str:
    with grpc.insecure_channel(target) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=timeout
        )
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class ServiceProcess:
    """`python -m services.<name>` (or `python -c code`) on a free loopback port; stopped by PID."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, code: str | None = None):
        self.name = name
        self.port = free_ports(1)[0]
        prefix = f"VBG_{name.upper()}_"
        env = {**env, f"{prefix}GRPC_HOST": "127.0.0.1", f"{prefix}GRPC_PORT": str(self.port)}
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-c", code] if code else [sys.executable, "-m", f"services.{name}"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()}")
            try:
                if health(self.target, timeout=0.5) == "SERVING":
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not SERVING after {timeout:g} s:\n{self.log()}")

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the exit code of a graceful drain."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
        return self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


async def ingested_job(
    js: JetStreamContext,
    nats_url: str,
    s3_endpoint: str,
    store: ObjectStore,
    job_id: str,
    job_spec: dict[str, Any],
) -> Job:
    """A job taken through ingest (in-process Ingest service, over gRPC): status processing, source in S3,
    segment work queued."""
    from services.common.stage_service import Service
    from services.ingest.server import IngestSettings, build_server
    from vbg.v1 import stages_pb2, stages_pb2_grpc

    await create_job(js, job_id, job_spec)
    settings = stage_settings(IngestSettings, nats_url, s3_endpoint, store)
    async with Service(settings, build_server, name="ingest") as svc:
        with grpc.insecure_channel(svc.target) as ch:
            stub = stages_pb2_grpc.IngestStub(ch)
            await asyncio.to_thread(stub.Ingest, stages_pb2.StageRequest(job_id=job_id), timeout=30)
    return await JobStore(js).get(job_id)


def load_chunk(store: ObjectStore, job_id: str, chunk: int, height: int, width: int) -> MatteChunk:
    """One matte chunk as the compositor reads it."""
    return matte_chunks.decode(
        store.get_bytes(object_keys.matte_chunk(job_id, chunk)), height=height, width=width
    )
