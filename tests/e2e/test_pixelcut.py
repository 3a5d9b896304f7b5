"""REST in, video out: Pixelcut requests through the whole local stack, results checked by decoding them."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from devstack.stack import FileServer, Stack, download, submit, wait_job
from tests.mediacheck import rgba_frames, summarize
from videobg.media.probe import probe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIP = "people/androidx_bt601.mov"  # 640x428, 30 frames at 29.97 fps, mono AAC
JOB_TIMEOUT_S = 180.0


def run_job(stack: Stack, files: FileServer, clip: Path, dest: Path, background: str, fmt: str) -> dict:
    job_id = submit(stack.url, files.url_for(clip), background, fmt)
    status = wait_job(stack.url, job_id, timeout_s=JOB_TIMEOUT_S)
    assert status["status"] == "completed", status
    assert status["progress"] == 100.0
    # the stack's default model (human) with its first-frame saliency anchor: what the segmenter loaded
    assert status["weights"] == "rvm_mobilenetv3+u2netp", status
    download(status["result_url"], dest)
    return status


def assert_same_shape_and_time(src: Path, result: Path) -> None:
    info = probe(src)
    got = summarize(result)
    frame_s = 1.0 / float(info.fps_avg or info.fps_nominal)
    assert (got.width, got.height) == (info.width, info.height)
    assert abs(got.frames - info.frame_count) <= 1, (got.frames, info.frame_count)
    assert abs(got.duration_s - info.duration_s) <= frame_s + 1e-3, (got.duration_s, info.duration_s)
    assert got.audio, "the source's audio track is missing from the result"
    assert abs(got.audio_duration_s - info.duration_s) <= 0.1, got.audio_duration_s


def test_colour_background_mp4(stack: Stack, files: FileServer, media: Path, tmp_path: Path) -> None:
    src = media / CLIP
    out = tmp_path / "result.mp4"
    run_job(stack, files, src, out, "#1E90FF", "mp4_h264")
    assert_same_shape_and_time(src, out)
    assert summarize(out).video_codec == "h264"
    # metric: share of pixels within L-inf 40 of the requested colour (the background shows; the subject
    # is kept, so not every pixel is background)
    frame = rgba_frames(out, limit=15)[-1][..., :3].astype(np.int16)
    near = np.abs(frame - np.array([30, 144, 255])).max(axis=-1) <= 40
    assert 0.10 < near.mean() < 0.98, near.mean()


def test_transparent_webm_has_varying_alpha(
    stack: Stack, files: FileServer, media: Path, tmp_path: Path
) -> None:
    src = media / CLIP
    out = tmp_path / "result.webm"
    run_job(stack, files, src, out, "transparent", "webm_vp9")
    assert_same_shape_and_time(src, out)
    n = probe(src).frame_count
    # limit = the frame count: rgba_frames' flush after a VP9 stream's end raises EOFError in this PyAV
    frames = rgba_frames(out, limit=n)
    assert len(frames) >= n - 1
    alpha = np.stack([f[..., 3] for f in frames])  # [T, H, W] uint8
    opaque = (alpha > 240).mean()
    clear = (alpha < 16).mean()
    # metric: both fully opaque (subject) and fully clear (background) pixels make up a real share
    assert opaque > 0.05 and clear > 0.05, (opaque, clear)
    assert alpha.std() > 40, alpha.std()


def test_missing_source_fails_the_job(stack: Stack, files: FileServer) -> None:
    # the file server answers 404: ingest cannot fetch it, and the job ends failed (not stuck, not retried)
    job_id = submit(
        stack.url, f"http://127.0.0.1:{files.port}/people/no_such_clip.mp4", "#000000", "mp4_h264"
    )
    status = wait_job(stack.url, job_id, timeout_s=JOB_TIMEOUT_S)
    assert status["status"] == "failed" and status["error_code"], status
    record = httpx.get(f"{stack.url}/internal/jobs/{job_id}", trust_env=False).json()
    assert record["status"] == "failed"
