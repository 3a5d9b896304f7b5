"""Issue 11's gateway policies through the whole local stack: a source the submit probe proves unusable
is a 400 of the submit call; an upload's http URL runs as a removebgvideo source; mp4 with the default
background comes out over chroma-key green; the request id is on the job."""

from __future__ import annotations

import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from devstack.stack import FileServer, Stack, download

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIP = "people/androidx_bt601.mov"  # 640x428, 30 frames
JOB_TIMEOUT_S = 180.0
GREEN = np.array([0, 177, 64], np.float32)


def test_an_image_as_video_is_refused_at_submit(stack: Stack, files: FileServer, media: Path) -> None:
    """Seed 003: unsupported_image_format is a 400 of POST /v1/video/remove-background."""
    url = files.url_for(media / "backgrounds" / "androidx_london.jpg")
    r = httpx.post(f"{stack.url}/v1/video/remove-background", json={"video_url": url}, trust_env=False)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "unsupported_image_format"


def test_upload_url_mp4_default_background_and_request_id(stack: Stack, media: Path, tmp_path: Path) -> None:
    with httpx.Client(base_url=stack.url, trust_env=False, timeout=60) as http:
        clip = media / CLIP
        up = http.post("/v1/uploads", files={"file": (clip.name, clip.read_bytes(), "video/quicktime")})
        assert up.status_code == 201, up.text
        r = http.post(
            "/v1/jobs",
            json={"video_url": up.json()["url"], "output_format": "mp4"},
            headers={"X-Request-Id": "e2e-policy-1"},
        )
        assert r.status_code == 200 and r.headers["x-request-id"] == "e2e-policy-1", r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            job = http.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert job["status"] == "completed", job
        assert job["model"] == "original" and job["weights"] == "u2netp"  # the weights the segmenter ran
        assert job["background"]["defaulted"] is True and job["background"]["color"] == [0, 177, 64]
        assert job["input"]["video_url"] == f"asset://{up.json()['asset_id']}"  # read from S3, not fetched
        assert http.get(f"/internal/jobs/{job_id}").json()["request_id"] == "e2e-policy-1"
        assert job_id in [
            j["id"] for j in http.get("/v1/jobs", params={"status": "completed"}).json()["jobs"]
        ]
        out = download(job["output_url"], tmp_path / "out.mp4")
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(np.float32)
    # metric: share of pixels within 40 (RGB distance) of the default green: the background that was keyed
    near_green = (np.linalg.norm(frame - GREEN, axis=-1) < 40).mean()
    assert near_green > 0.2, near_green
