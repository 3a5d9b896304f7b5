"""A source URL whose server trickles bytes must not hold an ingest worker: every read is paced.

Before the fix a byte every few seconds kept httpx's per-read timeout happy forever, and the total
deadline was only looked at once a whole 1 MiB chunk had arrived.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.common.fetch import fetch_to_file
from tests.security.trickle import trickling_server
from videobg.errors import Transient

pytestmark = [pytest.mark.security, pytest.mark.unit, pytest.mark.timeout(120)]

LOOPBACK = "127.0.0.0/8"


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
