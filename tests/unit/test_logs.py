"""Structured logs: one JSON object per line, with the ids bound where the work started."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from services.common import logs

pytestmark = pytest.mark.unit


def _line(record: logging.LogRecord) -> dict:
    logs.ContextFilter().filter(record)
    text = logs.JsonFormatter("ingest").format(record)
    assert "\n" not in text  # one object per line, even with a newline in the message
    return json.loads(text)


def _record(msg: str, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord("services.ingest", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_bound_ids_reach_every_line_and_threads() -> None:
    with logs.bound(job_id="j-1", stage="ingest", request_id="r-1"):
        line = _line(_record("probe\nnext"))
        in_thread = asyncio.run(asyncio.to_thread(lambda: _line(_record("in a thread"))))
    assert line["job_id"] == "j-1" and line["stage"] == "ingest" and line["request_id"] == "r-1"
    assert line["msg"] == "probe\nnext" and line["service"] == "ingest" and line["level"] == "INFO"
    assert in_thread["job_id"] == "j-1"
    after = _line(_record("outside"))
    assert "job_id" not in after and "request_id" not in after  # unbound again, empty ids left out


def test_explicit_extra_wins_and_request_ids_are_tame() -> None:
    with logs.bound(job_id="outer"):
        assert _line(_record("x", job_id="inner"))["job_id"] == "inner"
    assert logs.request_id_from("abc-123") == "abc-123"
    for bad in ("", "has space", 'quote"', "x" * 129, "new\nline"):
        new = logs.request_id_from(bad)
        assert new != bad and len(new) == 32
