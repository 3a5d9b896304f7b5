"""Answers at submit (services/gateway/precheck.py): the Pixelcut contract's input limits as 400s of the
submit call, in each dialect's shape, from a ranged read of a URL or the uploaded asset; reservations on
the probed length; whatever cannot be decided within the budget is accepted as before."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import make_clip
from tests.integration.gatewaykit import gateway, ingest_seq, settings_for, tenant

pytestmark = pytest.mark.integration

PIXELCUT = "/v1/video/remove-background"
STUDIO = "/v1/proxy/studio-background"
JOBS = "/v1/jobs"
HUGE = 200 * 1024 * 1024  # what /huge.mp4 claims to be


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves `files` with single-range support (206 + Content-Range), as CDNs and S3 do; /huge.mp4
    states a total past the limit; /norange/* ignores Range (200 with the whole body)."""

    files: dict[str, bytes] = {}
    ranged: list[str] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.split("?")[0]
        rng = self.headers.get("Range", "")
        self.ranged.append(rng)
        if name == "/huge.mp4":
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-1023/{HUGE}")
            self.send_header("Content-Length", "1024")
            self.end_headers()
            self.wfile.write(b"\0" * 1024)
            return
        data = self.files.get(name.removeprefix("/norange"))
        if data is None:
            self.send_error(404)
            return
        if rng.startswith("bytes=") and not name.startswith("/norange"):
            first, _, last = rng[6:].partition("-")
            start, end = int(first), min(int(last or len(data) - 1), len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            body = data[start : end + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(files: dict[str, bytes]) -> Iterator[str]:
    handler = type("Files", (_Files,), {"files": files, "ranged": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _encode(path: Path, codec: str, width: int, height: int, frames: int, fps: int = 10) -> bytes:
    # MP4s with the index first (faststart), as streaming sites serve them: a head read sees the header
    options = {"movflags": "faststart"} if path.suffix == ".mp4" else {}
    with av.open(str(path), "w", options=options) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), i % 255, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path.read_bytes()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("probe-clips")
    five = make_clip(d / "five.mp4", width=96, height=64, frames=50, fps=10, audio=False).read_bytes()
    return {
        "/five.mp4": five,
        "/long.mp4": make_clip(
            d / "long.mp4", width=64, height=64, frames=700, fps=10, audio=False
        ).read_bytes(),
        "/wide.mp4": _encode(d / "wide.mp4", "libx264", 4160, 64, 3),
        "/clip.avi": _encode(d / "clip.avi", "mpeg4", 64, 64, 3),
        # an MP4 cut in half (no index): undecodable, deterministically (random bytes sometimes look
        # like a container outside the whitelist, which is unsupported_image_format instead)
        "/garbage.mp4": five[: len(five) // 2],
    }


@pytest.fixture
def settings(nats_url, s3_endpoint, object_store):
    return settings_for(nats_url, s3_endpoint, object_store, submit_probe_s=5.0, fetch_allow="127.0.0.0/8")


async def test_pixelcut_limits_are_400s_of_the_submit_call(settings, clips) -> None:
    """Seed 003: file_size_too_large, resolution_too_high, unsupported_image_format, malformed_image and
    "Max duration: 60 seconds" are 400 responses of POST /v1/video/remove-background."""
    with serving(clips) as base:
        async with gateway(settings) as (gw, http):
            _, key = await tenant(gw)
            before = await ingest_seq(gw)
            cases = [
                ("/huge.mp4", "file_size_too_large"),
                ("/wide.mp4", "resolution_too_high"),
                ("/clip.avi", "unsupported_image_format"),
                ("/garbage.mp4", "malformed_image"),
                ("/long.mp4", "invalid_parameter"),  # 70 s: over the 60 s limit
            ]
            for path, code in cases:
                r = await http.post(PIXELCUT, json={"video_url": base + path}, headers=key)
                assert r.status_code == 400, (path, r.text)
                assert set(r.json()) == {"error", "error_code"} and r.json()["error_code"] == code, path
            assert (
                "60"
                in (await http.post(PIXELCUT, json={"video_url": base + "/long.mp4"}, headers=key)).json()[
                    "error"
                ]
            )
            assert await ingest_seq(gw) == before, "a refused submit queued work"
            r = await http.post(PIXELCUT, json={"video_url": base + "/five.mp4"}, headers=key)
            assert r.status_code == 202, r.text


async def test_other_dialects_answer_in_their_shapes(settings, clips) -> None:
    with serving(clips) as base:
        async with gateway(settings) as (gw, http):
            _, key = await tenant(gw)
            r = await http.post(STUDIO, json={"videoUrl": base + "/wide.mp4"}, headers=key)
            assert r.status_code == 400 and r.json()["status"] == "error"
            assert r.json()["error"]["code"] == "resolution_too_high"
            r = await http.post(JOBS, json={"video_url": base + "/huge.mp4"}, headers=key)
            assert r.status_code == 400 and r.json()["success"] is False
            assert r.json()["error"]["code"] == "file_size_too_large"
            # studio's trim brings the 70 s clip within the limit: accepted, reserved on the span
            r = await http.post(
                STUDIO, json={"videoUrl": base + "/long.mp4", "start": 5, "end": 25}, headers=key
            )
            assert r.status_code == 202, r.text


async def test_a_key_with_10_credits_can_process_a_5_s_clip(settings, clips) -> None:
    """Reservations on the probed (trimmed) length; unknown length keeps the 60 s worst case."""
    with serving(clips) as base:
        async with gateway(settings) as (gw, http):
            owner, key = await tenant(gw, credits=10)  # "original": 60 credits/min -> 5 s is 5 credits
            r = await http.post(JOBS, json={"video_url": base + "/five.mp4"}, headers=key)
            assert r.status_code == 200, r.text
            record = await gw.gateway.jobs.get(r.json()["id"])
            assert record.billing.basis == "probed"
            assert record.billing.reserved_seconds == pytest.approx(5.0, abs=0.15)
            assert record.submit_probe.whole_file is True
            assert (await gw.gateway.ledger.account(owner)).reserved_milli == pytest.approx(5000, abs=150)
            # a source the probe cannot measure in the budget reserves the worst case: 60 credits, refused
            r = await http.post(JOBS, json={"video_url": "http://127.0.0.1:9/x.mp4"}, headers=key)
            assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_api_credits"


async def test_head_only_reads_refuse_only_what_the_header_states(nats_url, s3_endpoint, object_store, clips):
    settings = settings_for(
        nats_url, s3_endpoint, object_store, submit_probe_s=5.0, submit_probe_bytes=1024,
        fetch_allow="127.0.0.0/8",
    )  # fmt: skip
    with serving(clips) as base:
        async with gateway(settings) as (gw, http):
            _, key = await tenant(gw)
            r = await http.post(PIXELCUT, json={"video_url": base + "/wide.mp4"}, headers=key)
            assert r.status_code == 400 and r.json()["error_code"] == "resolution_too_high"
            # the first KiB of a truncated file proves nothing: accepted, ingest decides
            r = await http.post(PIXELCUT, json={"video_url": base + "/garbage.mp4"}, headers=key)
            assert r.status_code == 202, r.text
            # a server that ignores Range: the head is read, the rest never is
            r = await http.post(PIXELCUT, json={"video_url": base + "/norange/five.mp4"}, headers=key)
            assert r.status_code == 202, r.text
            record = await gw.gateway.jobs.get(r.json()["job_id"])
            assert record.billing.basis == "worst_case"  # not measured: the 60 s reservation
            assert record.submit_probe.whole_file is False


async def test_uploaded_assets_are_probed_from_s3(settings, clips) -> None:
    async with gateway(settings) as (gw, http):
        _, key = await tenant(gw)
        ids = {}
        for name in ("/garbage.mp4", "/five.mp4"):
            up = await http.post("/v1/uploads", files={"file": (name[1:], clips[name])}, headers=key)
            assert up.status_code == 201, up.text
            ids[name] = up.json()["asset_id"]
        r = await http.post(STUDIO, json={"videoUrl": f"asset://{ids['/garbage.mp4']}"}, headers=key)
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_image"
        r = await http.post(JOBS, json={"video_url": f"asset://{ids['/five.mp4']}"}, headers=key)
        assert r.status_code == 200, r.text
        assert (await gw.gateway.jobs.get(r.json()["id"])).billing.basis == "probed"


async def test_a_source_that_does_not_answer_in_the_budget_is_accepted(nats_url, s3_endpoint, object_store):
    settings = settings_for(
        nats_url, s3_endpoint, object_store, submit_probe_s=1.0, fetch_allow="127.0.0.0/8"
    )
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/clip.mp4"
        async with gateway(settings) as (gw, http):
            _, key = await tenant(gw)
            r = await http.post(PIXELCUT, json={"video_url": url}, headers=key)
            assert r.status_code == 202, r.text
            assert "submit_probe" not in await gw.gateway.jobs.get(r.json()["job_id"])
