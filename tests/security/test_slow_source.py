"""A source URL whose server trickles bytes must not hold an ingest worker: every read is paced.

Before the fix a byte every few seconds kept httpx's per-read timeout happy forever, and the total
deadline was only looked at once a whole 1 MiB chunk had arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from services.common.fetch import fetch_to_file
from services.common.jobstore import JobStore
from services.common.stage_service import Service
from services.ingest.server import IngestSettings, build_server, build_worker
from tests.integration import stagekit as kit
from tests.security.trickle import trickling_server
from videobg import nats_subjects
from videobg.errors import Transient

pytestmark = [pytest.mark.security, pytest.mark.timeout(120)]

LOOPBACK = "127.0.0.0/8"


@pytest.mark.unit
@pytest.mark.parametrize("where", ["body", "header"])
def test_trickling_source_is_cut_off_by_its_rate(tmp_path: Path, where: str) -> None:
    with trickling_server(every_s=0.5, where=where) as server:
        t0 = time.monotonic()
        with pytest.raises(Transient, match="too slow") as err:
            fetch_to_file(
                server.url,
                tmp_path / "src",
                max_bytes=10**7,
                timeout_s=90,
                min_rate_bytes_s=1000,
                rate_window_s=2.0,
                what="source video",
                allow=LOOPBACK,
            )
        took = time.monotonic() - t0
    assert "source video" in err.value.message and "127.0.0.1" not in err.value.message
    assert took < 60, took  # cut off by the rate window, long before the total deadline
    assert not (tmp_path / "src").exists() and not (tmp_path / "src.part").exists()


@pytest.mark.unit
def test_trickling_source_is_cut_off_by_its_total_deadline(tmp_path: Path) -> None:
    """With no rate floor, the total deadline still ends it (checked on every read, not per chunk)."""
    with trickling_server(every_s=0.3) as server:
        with pytest.raises(Transient, match="took longer than 3 s"):
            fetch_to_file(
                server.url,
                tmp_path / "src",
                max_bytes=10**7,
                timeout_s=3,
                min_rate_bytes_s=0,
                what="source video",
                allow=LOOPBACK,
            )


@pytest.mark.integration
async def test_ingest_serves_other_jobs_while_a_source_trickles(
    nats_url: str, s3_endpoint: str, object_store, jetstream, uid: str
) -> None:
    """One job's source trickles (slow, but above this test's rate floor); a job queued after it is
    ingested meanwhile by the same ingest process. Before the fix the worker took one job at a time."""
    settings = kit.stage_settings(
        IngestSettings,
        nats_url,
        s3_endpoint,
        object_store,
        fetch_allow=LOOPBACK,
        fetch_min_rate_bytes_s=0.1,
        fetch_rate_window_s=10.0,
        concurrency=2,
    )
    slow, quick = f"slow-{uid}", f"quick-{uid}"
    kit.upload(object_store, f"a-{uid}")
    with trickling_server(every_s=0.5) as server:
        async with jetstream() as (_, js):
            await kit.purge_work(js)
            await kit.create_job(js, slow, kit.spec(source={"url": server.url}))
            await kit.create_job(js, quick, kit.spec(source={"asset_id": f"a-{uid}"}))
            async with Service(settings, build_server, build_worker, name="ingest"):
                await js.publish(nats_subjects.WORK_INGEST, json.dumps({"job_id": slow}).encode())

                def trickling() -> bool:
                    return server.bytes_sent > 0

                while not trickling():  # the slow job holds a download
                    await asyncio.sleep(0.1)
                await js.publish(nats_subjects.WORK_INGEST, json.dumps({"job_id": quick}).encode())
                job = await kit.wait_record(js, quick, lambda j: bool(j.frames_total) or j.status == "failed")
                assert job.status == "processing" and job.frames_total == kit.CLIP_FRAMES, job
                assert (await JobStore(js).get(slow)).info is None  # still downloading
                server.stop()  # end the trickle so the service drains quickly
