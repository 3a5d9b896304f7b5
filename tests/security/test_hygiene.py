"""Hygiene: credentials never reach a log, client-facing errors carry no bucket names, object keys or
exception reprs, every read of user media goes through one whitelisted opener, and the servers the
stack starts keep their files under its data dir."""

from __future__ import annotations

import ast
import asyncio
import io
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from devstack.procs import ServerProc, free_ports
from services.common import bus
from services.common.logs import JsonFormatter, RedactingFormatter
from services.common.objstore import ObjectStore
from tests.conftest import REPO
from videobg.errors import NotFound, Transient, Unsupported, as_public
from videobg.media.audio import open_audio
from videobg.media.formats import get_format
from videobg.media.probe import open_input
from videobg.types import Trim

pytestmark = [pytest.mark.security]

SECRET = "s3cr3t-pa55"


@pytest.mark.unit
def test_credentials_in_urls_never_reach_a_log() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter(JsonFormatter("test")))
    logger = logging.getLogger("hygiene-test")
    logger.addHandler(handler)
    try:
        logger.warning("connecting to %s", f"nats://vbg:{SECRET}@nats.internal:4222")
        try:
            raise RuntimeError(f"failed: https://admin:{SECRET}@s3.internal/bucket")
        except RuntimeError:
            logger.exception("traceback too")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert SECRET not in text and "nats://***@nats.internal:4222" in text and "https://***@s3" in text


@pytest.mark.unit
def test_nats_connect_failure_names_no_password(caplog: pytest.LogCaptureFixture) -> None:
    (port,) = free_ports(1)
    with pytest.raises(Transient) as err:
        asyncio.run(bus.connect(f"nats://vbg:{SECRET}@127.0.0.1:{port}", initial_attempts=1))
    assert SECRET not in err.value.message and SECRET not in str(err.value)
    assert "127.0.0.1" in str(err.value)  # the detail, for the operator's log
    assert SECRET not in caplog.text


@pytest.mark.integration
def test_object_store_errors_keep_bucket_and_key_out_of_client_messages(object_store: ObjectStore) -> None:
    key = "jobs/secret-job-id/matte/000007.matte"
    with pytest.raises(NotFound) as err:
        object_store.get_bytes(key)
    public = as_public(err.value).to_dict()["error"]
    assert object_store.bucket not in public and key not in public and "NoSuchKey" not in public
    assert key in str(err.value)  # what the log line (with the job id) gets


@pytest.mark.unit
def test_every_av_open_of_user_data_is_the_whitelisted_opener() -> None:
    """No module of the service calls av.open except open_input (reads) and the encoder (mode "w")."""
    calls = []
    for path in [*(REPO / "videobg").rglob("*.py"), *(REPO / "services").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "open"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "av"
            ):
                writes = any(isinstance(a, ast.Constant) and a.value == "w" for a in node.args[1:2]) or any(
                    k.arg == "mode" and isinstance(k.value, ast.Constant) and k.value.value == "w"
                    for k in node.keywords
                )
                calls.append((path.relative_to(REPO).as_posix(), writes))
    reads = [p for p, writes in calls if not writes]
    assert reads == ["videobg/media/probe.py"], calls


@pytest.mark.unit
def test_audio_path_refuses_what_the_opener_refuses(tmp_path: Path) -> None:
    """A WAV file (not an accepted container) as the audio source: no audio, and a typed refusal."""
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w", format="wav") as out:
        s = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.rate = 8000
        for p in s.encode(frame):
            out.mux(p)
    with pytest.raises(Unsupported):
        open_input(wav).close()
    with av.open(str(tmp_path / "out.mp4"), "w", format="mp4") as output:
        track, summary = open_audio(output, get_format("mp4_h264"), wav, None, Trim())
    assert track is None and "Unsupported container" in summary.warning


@pytest.mark.integration
def test_seaweedfs_logs_stay_under_its_data_dir(s3_server: ServerProc, infra_dir: Path) -> None:
    logs = infra_dir / "s3" / "logs"
    assert logs.is_dir() and any(logs.iterdir()), "weed wrote its glog files elsewhere"
