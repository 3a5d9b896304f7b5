"""The conformance kit's own parts (conformance/): its quotes, parsing, media helpers, independence."""

from __future__ import annotations

import ast
import email.utils
import io
import os
import re
import time
from pathlib import Path

import pytest

from conformance import media, seeds
from conformance.client import error_code, retry_after_s
from conformance.host import Entry
from conformance.kit import status_of
from conformance.report import FAIL, PASS, Result, print_table
from tests.conftest import REPO

pytestmark = pytest.mark.unit

KIT = REPO / "conformance"


def seeds_dir() -> Path:
    return Path(os.environ.get("VIDEOBG_SEEDS_DIR", REPO.parent / "shared" / "seeds"))


def test_every_quote_is_in_its_seed() -> None:
    folder = seeds_dir()
    if not folder.is_dir():
        pytest.skip(f"seeds not found at {folder}")
    norm = lambda s: re.sub(r"\s+", " ", s)  # noqa: E731
    pages = {p.name[:3]: norm(p.read_text()) for p in folder.iterdir() if p.suffix == ".txt"}
    missing = [f"{name}: {q}" for name, q in seeds.ALL.items() if norm(q.text) not in pages.get(q.seed, "")]
    assert not missing, missing
    assert len(seeds.ALL) > 50


def test_kit_imports_nothing_from_the_service() -> None:
    # an outside client: it must run with httpx + PyAV (+ numpy) alone, against any vendor
    allowed = {"conformance", "httpx", "av", "numpy"}
    for path in KIT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in _stdlib(), f"{path.name} imports {name}"


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 20 < (retry_after_s(later) or 0) <= 31
    assert retry_after_s(email.utils.formatdate(time.time() - 30, usegmt=True)) == 0.0


def test_error_code_in_each_dialect_shape() -> None:
    assert (
        error_code({"error": "Too many requests", "error_code": "rate_limit_exceeded"})
        == "rate_limit_exceeded"
    )
    assert error_code({"status": "error", "error": {"code": "not_found", "message": "x"}}) == "not_found"
    assert error_code({"success": False, "error": {"code": "conflict", "message": "x"}}) == "conflict"
    assert error_code({"job_id": "x"}) is None and error_code("text") is None


def test_status_of_each_dialect() -> None:
    assert status_of("pixelcut", {"status": "completed", "result_url": "u"}) == ("completed", "u", None)
    studio = {"job": {"status": "failed", "error": {"code": "malformed_image", "message": "m"}}}
    assert status_of("studio", studio) == ("failed", None, "malformed_image")
    assert status_of("studio", {"job": {"status": "completed", "result": {"url": "r"}}})[1] == "r"
    assert status_of("removebgvideo", {"status": "completed", "output_url": "o"})[:2] == ("completed", "o")


def test_padded_clip_is_a_valid_mp4_of_the_padded_size(tmp_path: Path) -> None:
    clip = media.write_clip(tmp_path / "ok.mp4", width=64, height=64, frames=5)
    total = clip.stat().st_size + 3 * (1 << 20) + 17
    entry = Entry(
        "video/mp4", path=clip, pad_to=total, pad_header=media.free_box_header(total, clip.stat().st_size)
    )
    padded = tmp_path / "padded.mp4"
    padded.write_bytes(b"".join(entry.read(0, entry.size)))
    assert padded.stat().st_size == total
    info = media.inspect(padded)
    assert (info.width, info.height, info.frames) == (64, 64, 5)
    # a byte range of the padded file, as the kit's file host serves it
    assert b"".join(entry.read(10, 20)) == padded.read_bytes()[10:20]


def test_generated_bad_inputs(tmp_path: Path) -> None:
    wide = media.inspect(media.write_clip(tmp_path / "w.mp4", width=4160, height=64, frames=2))
    assert (wide.width, wide.height) == (4160, 64)
    long = media.inspect(media.write_clip(tmp_path / "l.mp4", width=64, height=64, frames=62, fps=1))
    assert long.duration_s > 60
    avi = media.inspect(
        media.write_clip(tmp_path / "c.avi", width=64, height=64, frames=5, codec="mpeg4", fmt="avi")
    )
    assert avi.container == "avi" and avi.video_codec == "mpeg4"


def test_table_lists_every_case_with_its_quote() -> None:
    rows = [
        Result("a.case", (seeds.PC_401,), "401", got="401 invalid_auth_token", outcome=PASS),
        Result("b.case", (seeds.RATE, seeds.PC_429), "429", got="200", outcome=FAIL),
    ]
    out = io.StringIO()
    print_table(rows, out)
    text = out.getvalue()
    assert "a.case" in text and "b.case" in text and "1 pass, 1 fail" in text
    assert '[003] "The authentication token is missing or invalid."' in " ".join(text.split())
