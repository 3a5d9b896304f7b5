"""The one process lifecycle (services/common/lifecycle.py) as the gateway's main runs it: serve, drain on
SIGTERM with exit 0, and exit 1 in one line when NATS cannot be reached at start (the stage mains'
side is in test_segmenter.py: serving + SIGTERM, SIGTERM during a slow warm-up)."""

from __future__ import annotations

import asyncio

from devstack.procs import free_ports
from tests.integration import stagekit as kit


def _gateway_env(shared: dict[str, str]) -> dict[str, str]:
    """The gateway reads VBG_GATEWAY_* only: the shared VBG_* settings under its prefix (ServiceProcess
    adds the gRPC address)."""
    env = {k: v for k, v in shared.items() if not k.startswith("VBG_")}
    env.update({"VBG_GATEWAY_" + k[len("VBG_") :]: v for k, v in shared.items() if k.startswith("VBG_")})
    env.update(
        VBG_GATEWAY_HTTP_HOST="127.0.0.1",
        VBG_GATEWAY_HTTP_PORT=str(free_ports(1)[0]),
        VBG_GATEWAY_AUTH_REQUIRED="false",
        VBG_GATEWAY_LOG_FORMAT="text",
    )
    return env


async def test_gateway_process_serves_then_drains_on_sigterm(nats_url, s3_endpoint, object_store, tmp_path):
    env = _gateway_env(kit.service_env(nats_url, s3_endpoint, object_store))
    proc = kit.ServiceProcess("gateway", env, tmp_path)
    try:
        await asyncio.to_thread(proc.wait_serving, 60.0)
        code = await asyncio.to_thread(proc.terminate, 60.0)
        assert code == 0, proc.log()
        assert "gateway stopped" in proc.log()
        assert "Traceback" not in proc.log()
    finally:
        proc.kill()


async def test_gateway_process_without_nats_exits_1_in_one_line(s3_endpoint, object_store, tmp_path):
    nowhere = free_ports(1)[0]  # nothing listens there
    env = _gateway_env(kit.service_env(f"nats://127.0.0.1:{nowhere}", s3_endpoint, object_store))
    proc = kit.ServiceProcess("gateway", env, tmp_path)
    try:
        code = await asyncio.to_thread(proc.popen.wait, 120)
        assert code == 1, proc.log()
        assert "gateway: cannot start" in proc.log()
        assert "Traceback" not in proc.log()
    finally:
        proc.kill()
