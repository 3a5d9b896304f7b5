"""REST in, refusal out: jobs whose video URL points at loopback fail with invalid_parameter, and the
target never sees a connection, also when the first hop is allowed and redirects there.

This module runs its own stack (gateway and ingest, no models needed) because it needs the allow-list
the shared `stack` fixture does not have: that one admits 127.0.0.0/8 so the other tests can serve clips
from loopback. Here ingest admits 127.0.0.2/32 only, the address of a redirector, so:

    http://127.0.0.1:<trap>/x.mp4               refused (loopback), before any connection
    http://localhost:<trap>/x.mp4               refused after resolving the name
    http://[::ffff:127.0.0.1]:<trap>/x.mp4      refused (IPv4-mapped loopback)
    http://127.0.0.2:<redir>/r.mp4 -> 302 to http://127.0.0.1:<trap>/x.mp4   first hop served, second refused

The trap is a TCP listener on 127.0.0.1 that counts accepted connections; it must count none. No traffic
leaves 127.0.0.0/8: every address in this test is loopback, and the refused ones are never connected to.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.stack import Stack, StackConfig
from tests.e2e.conftest import running_stack

pytestmark = [pytest.mark.e2e]

SUBMIT = "/v1/video/remove-background"
REDIRECTOR_HOST = "127.0.0.2"  # Linux routes all of 127/8 to loopback


class Trap:
    """Counts TCP connections to 127.0.0.1:<port>; answers none of them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


class Redirector:
    """HTTP on 127.0.0.2: every GET answers 302 to `location`; counts requests."""

    def __init__(self, location: str) -> None:
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((REDIRECTOR_HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def strict_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    def config() -> StackConfig:
        return StackConfig(
            data_dir=tmp_path_factory.mktemp("ssrf-stack"),
            http_port=0,
            services=("ingest", "gateway"),
            ack_wait_s=3.0,
            env={
                "VBG_INGEST_FETCH_ALLOW": f"{REDIRECTOR_HOST}/32",  # not 127.0.0.1: the guard is on
                "VBG_GATEWAY_FETCH_ALLOW": "",
                "VBG_GATEWAY_AUTH_REQUIRED": "false",
                "VBG_BACKOFF_S": "[1.0]",
            },
        )

    with running_stack(config) as st:
        yield st


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    try:
        yield t
    finally:
        t.close()


def run_job(stack: Stack, video_url: str, timeout_s: float = 60.0) -> dict:
    """Submit through the Pixelcut dialect; the final status JSON (or the 400 of a refused submit)."""
    with httpx.Client(base_url=stack.url, trust_env=False, timeout=10) as http:
        r = http.post(SUBMIT, json={"video_url": video_url, "output_format": "mp4_h264"})
        if r.status_code == 400:  # a gateway that checks source URLs at submit refuses here already
            return {"status": "failed", **r.json()}
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + timeout_s
        while True:
            body = http.get(f"{SUBMIT}/job/{job_id}").json()
            if body["status"] in ("completed", "failed"):
                return body
            assert time.monotonic() < deadline, f"job {job_id} still {body['status']}"
            time.sleep(0.2)


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://127.0.0.1:{port}/x.mp4", "loopback"),
        ("http://localhost:{port}/x.mp4", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/x.mp4", "loopback"),
    ],
)
def test_loopback_source_is_refused(strict_stack: Stack, trap: Trap, url: str, why: str) -> None:
    status = run_job(strict_stack, url.format(port=trap.port))
    assert status["status"] == "failed" and status["error_code"] == "invalid_parameter", status
    assert why in status["error"], status["error"]
    assert trap.connections == 0


def test_redirect_to_loopback_is_refused(strict_stack: Stack, trap: Trap) -> None:
    redirector = Redirector(f"http://127.0.0.1:{trap.port}/x.mp4")
    try:
        status = run_job(strict_stack, f"http://{REDIRECTOR_HOST}:{redirector.port}/r.mp4")
    finally:
        redirector.close()
    assert status["status"] == "failed" and status["error_code"] == "invalid_parameter", status
    assert "loopback" in status["error"], status["error"]
    assert redirector.requests == 1, "the allowed first hop was not fetched: the test proved nothing"
    assert trap.connections == 0
