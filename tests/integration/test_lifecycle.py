"""The one process lifecycle (services/common/lifecycle.py) as the gateway's main runs it: serve, drain on
SIGTERM with exit 0, and exit 1 in one line when NATS cannot be reached at start (the stage mains'
side is in test_segmenter.py: serving + SIGTERM, SIGTERM during a slow warm-up)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.procs import free_ports
from tests.conftest import REPO
from tests.integration import stagekit as kit


def _gateway_env(shared: dict[str, str], http_port: int, grpc_port: int) -> dict[str, str]:
    """The gateway reads VBG_GATEWAY_* only: the shared VBG_* settings under its prefix."""
    env = {k: v for k, v in shared.items() if not k.startswith("VBG_")}
    for k, v in shared.items():
        if k.startswith("VBG_"):
            env["VBG_GATEWAY_" + k[len("VBG_") :]] = v
    env.update(
        VBG_GATEWAY_HTTP_HOST="127.0.0.1",
        VBG_GATEWAY_HTTP_PORT=str(http_port),
        VBG_GATEWAY_GRPC_HOST="127.0.0.1",
        VBG_GATEWAY_GRPC_PORT=str(grpc_port),
        VBG_GATEWAY_AUTH_REQUIRED="false",
        VBG_GATEWAY_LOG_FORMAT="text",
    )
    return env


def _start(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.gateway"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway not healthy after {timeout_s:g} s:\n{log_path.read_text()[-3000:]}")


async def test_gateway_process_serves_then_drains_on_sigterm(nats_url, s3_endpoint, object_store, tmp_path):
    http_port, grpc_port = free_ports(2)
    env = _gateway_env(kit.service_env(nats_url, s3_endpoint, object_store), http_port, grpc_port)
    log_path = tmp_path / "gateway.log"
    proc = _start(env, log_path)
    try:
        await asyncio.to_thread(_wait_healthy, proc, f"http://127.0.0.1:{http_port}/healthz", log_path)
        os.kill(proc.pid, signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
        log = log_path.read_text()
        assert code == 0, log[-3000:]
        assert "gateway stopped" in log
        assert "Traceback" not in log
    finally:
        _stop(proc)


async def test_gateway_process_without_nats_exits_1_in_one_line(s3_endpoint, object_store, tmp_path):
    http_port, grpc_port, nowhere = free_ports(3)  # nothing listens on `nowhere`
    shared = kit.service_env(f"nats://127.0.0.1:{nowhere}", s3_endpoint, object_store)
    log_path = tmp_path / "gateway.log"
    proc = _start(_gateway_env(shared, http_port, grpc_port), log_path)
    try:
        code = await asyncio.to_thread(proc.wait, 120)
        log = log_path.read_text()
        assert code == 1, log[-3000:]
        assert "gateway: cannot start" in log
        assert "Traceback" not in log
    finally:
        _stop(proc)
