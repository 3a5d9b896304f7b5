"""The encoder's `completed` event is tried again while the bus is down: the record is completed before
the event is published, so a failed publish would otherwise end the delivery as done and lose the event
(seen in the failover drill: "0 completed events, 1 result objects")."""

from __future__ import annotations

import logging

import pytest

from services.encoder.stage import _announce
from videobg.errors import Transient

pytestmark = pytest.mark.unit


class _Run:
    """What `_announce` uses of a StageRun: its job id, its log and `event`, which fails `down` times."""

    def __init__(self, down: int) -> None:
        self.job_id = "job-1"
        self.log = logging.getLogger("test")
        self.down = down
        self.tries: list[dict] = []

    def event(self, **fields: object) -> None:
        self.tries.append(fields)
        if len(self.tries) <= self.down:
            raise Transient("The message bus is unavailable")


def test_the_event_is_published_after_the_bus_comes_back():
    run = _Run(down=3)
    _announce(run, "jobs/job-1/result.mp4", 12, retry_s=(0.0, 0.0, 0.0, 0.0))  # type: ignore[arg-type]
    assert len(run.tries) == 4  # three failures, then the one that landed
    last = run.tries[-1]
    assert (last["status"], last["msg_id"], last["result_key"]) == (
        "completed",
        "job-1:completed",
        "jobs/job-1/result.mp4",
    )
    assert {t["msg_id"] for t in run.tries} == {"job-1:completed"}  # one id: a landed repeat is dropped


def test_a_bus_down_for_good_is_logged_not_raised(caplog):
    run = _Run(down=99)
    with caplog.at_level(logging.ERROR):
        _announce(run, "k", 1, retry_s=(0.0, 0.0))  # type: ignore[arg-type]
    assert len(run.tries) == 3
    assert "could not be published" in caplog.text
