"""End-to-end fixtures: the whole local stack as child processes (devstack/stack.py, the same launcher as
`make run`) and a loopback file server for the shared clips. One stack per test session; tests that kill a
service start its replacement themselves.

Short `ack_wait` (3 s) and retry backoff, so a killed stage's message is redelivered within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from devstack.procs import ServerStartError
from devstack.stack import FileServer, Stack, StackConfig
from tests.conftest import model_dir
from videobg import nats_subjects

ACK_WAIT_S = 3.0


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    models = model_dir()
    if not (models / "rvm_mobilenetv3_fp32.onnx").exists():
        pytest.skip(f"model weights not found in {models} (make models)")

    def config() -> StackConfig:
        return StackConfig(
            data_dir=tmp_path_factory.mktemp("stack"),
            http_port=0,
            model_dir=models,
            ack_wait_s=ACK_WAIT_S,
            env={"VBG_BACKOFF_S": "[1.0]", "VBG_DRAIN_GRACE_S": "5"},
        )

    with running_stack(config) as st:
        yield st


@contextlib.contextmanager
def running_stack(config: Callable[[], StackConfig], what: str = "local stack") -> Iterator[Stack]:
    """A stack started from `config()`, stopped on leaving. Ports are picked free, then bound by the
    child: on a shared machine another process can take one in between, so a failed start is tried once
    more with a fresh `config()` (fresh ports, fresh data dir), with a warning that says so."""
    try:
        st = Stack(config()).start()
    except ServerStartError as e:
        warnings.warn(f"{what} failed to start, retrying once: {e}", stacklevel=3)
        st = Stack(config()).start()
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="session")
def files(media: Path) -> Iterator[FileServer]:
    with FileServer(media) as server:
        yield server


def job_events(stack: Stack, job_id: str) -> list[dict]:
    """Every event the job's subject holds, in order (read with an ordered consumer, then closed)."""

    async def read() -> list[dict]:
        assert stack.nats is not None
        nc = await nats.connect(stack.nats.url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe(
                nats_subjects.events_subject(job_id),
                stream=nats_subjects.EVENTS_STREAM,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
            events = []
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except nats.errors.TimeoutError:
                    break
                events.append(json.loads(msg.data))
            await sub.unsubscribe()
            return events
        finally:
            await nc.close()

    return asyncio.run(read())


def last_event(stack: Stack, job_id: str) -> dict | None:
    """The job's newest event, in one request (job_events waits for a second of quiet, too slow to catch
    a short stage at work)."""

    async def read() -> dict | None:
        assert stack.nats is not None
        nc = await nats.connect(stack.nats.url)
        try:
            msg = await nc.jetstream().get_last_msg(
                nats_subjects.EVENTS_STREAM, nats_subjects.events_subject(job_id)
            )
            return json.loads(msg.data) if msg.data else None
        except NotFoundError:
            return None
        finally:
            await nc.close()

    return asyncio.run(read())
