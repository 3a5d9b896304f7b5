"""The conformance kit (conformance/, an outside client) against the local stack with API keys required.

The stack is the one `make serve AUTH=1` runs; keys are made with the admin CLI it prints, as a user
would: one with credits, one whose account cannot pay for a job (the 403 cases). The rate-limit cases
burst the default per-key limit (10/s, 20 at once). Every case must pass; a SKIP is allowed only where
the kit cannot create the condition here (listed below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import REPO, Stack, StackConfig
from tests.conftest import model_dir
from tests.e2e.conftest import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLIP = "people/androidx_bt601.mov"  # 640x428, 1 s, a person at a desk, mono AAC
IMAGE = "backgrounds/androidx_london.jpg"
# Cases the kit may skip against this stack, and why.
ALLOWED_SKIPS = {
    "pixelcut.error.unknown_foreground": "no input is documented to trigger it",
    # a broken source is refused at submit, so no job reaches `failed` for the job.failed callback
    "removebgvideo.webhook.failed": "refused at submit",
}
# Cases that depend on gateway work not yet on main, agreed with the lead (the kit reports them as GAP).
KNOWN_GAPS: tuple[str, ...] = ()


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    models = model_dir()
    if not (models / "rvm_mobilenetv3_fp32.onnx").exists():
        pytest.skip(f"model weights not found in {models} (make models)")

    def config() -> StackConfig:
        return StackConfig(
            data_dir=tmp_path_factory.mktemp("auth-stack"),
            http_port=0,
            model_dir=models,
            auth_required=True,
            env={"VBG_GATEWAY_WEBHOOK_SECRET": "conformance-test-secret"},
        )

    with running_stack(config) as st:
        yield st


def admin(stack: Stack, *args: str) -> dict:
    """The operator CLI that `make serve AUTH=1` prints, against this stack's nats-server."""
    assert stack.nats is not None
    argv = [sys.executable, "-m", "services.gateway.admin", "--nats-url", stack.nats.url, "--json", *args]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.timeout(1500)  # the kit's jobs (17, 9 of them 6 frames) on a loaded 2-core machine
def test_kit_passes_against_local_stack_with_keys(auth_stack: Stack, media: Path, tmp_path: Path) -> None:
    key = admin(auth_stack, "create-key", "--owner", "conformance", "--credits", "600")["key"]
    poor = admin(auth_stack, "create-key", "--owner", "conformance-poor", "--credits", "0.5")["key"]
    report = tmp_path / "report.json"
    env = {**os.environ, "CONFORMANCE_KEY": key, "CONFORMANCE_POOR_KEY": poor}
    argv = [
        sys.executable, "-m", "conformance", "--base", auth_stack.url,
        "--sample", str(media / CLIP), "--image", str(media / IMAGE), "--json", str(report),
        # the seeds' default model (`original`) is several times slower than `human` on a CPU
        "--model", "human", "--job-timeout", "1000", "--work", str(tmp_path / "work"),
        *(f"--known-gap={name}" for name in KNOWN_GAPS),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1400)
    print(done.stdout[-20000:], done.stderr[-5000:])
    assert report.exists(), done.stderr[-5000:]
    rows = json.loads(report.read_text())
    failed = [f"{r['name']}: {r['got']}" for r in rows if r["outcome"] == "FAIL"]
    assert not failed, "\n".join(failed)
    skipped = {r["name"]: r["got"] for r in rows if r["outcome"] == "SKIP"}
    assert set(skipped) <= set(ALLOWED_SKIPS), skipped
    assert done.returncode == 0, done.stdout[-5000:]
    # every flow ran: the kit's table is the whole seed surface, not a subset that happened to pass
    assert len(rows) >= 90, len(rows)
