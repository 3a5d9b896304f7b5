"""The three dialects' request translation and error shapes, without a server (the same functions the
routes call); tests/integration/test_contracts_*.py send the same payloads over HTTP."""

from __future__ import annotations

import pytest

from services.common.protoconv import spec_from_proto, spec_to_proto
from services.common.record import Job, Status
from services.gateway import idempotency
from services.gateway.caller import Caller
from services.gateway.dialects import pixelcut, removebgvideo, studio
from services.gateway.dialects.body import hex_rgb
from videobg.errors import InsufficientCredits, InvalidInput, MissingParameter

pytestmark = pytest.mark.unit

ACME = Caller(owner="acme", key_id="0123456789ab")
URL = "https://cdn.example.com/input.mp4"


def test_every_spec_validates() -> None:
    for spec in (
        pixelcut.to_spec({"video_url": URL}, ACME),
        studio.to_spec({"videoUrl": URL, "back_ground": "#1E90FF", "start": 0, "end": 30}, ACME),
        removebgvideo.to_spec({"video_url": URL}, ACME),
    ):
        assert spec.validated() is spec and spec.owner == "acme"
        # the spec survives the proto round trip the gRPC API uses
        assert spec_from_proto(spec_to_proto(spec)) == spec


def test_error_shapes() -> None:
    err = InsufficientCredits("Insufficient credits available")
    assert pixelcut.error_body(err) == {
        "error": "Insufficient credits available",
        "error_code": "insufficient_api_credits",
    }
    assert studio.error_body(err) == {
        "status": "error",
        "error": {"code": "insufficient_api_credits", "message": "Insufficient credits available"},
    }
    assert removebgvideo.error_body(err) == {
        "success": False,
        "error": {"code": "insufficient_api_credits", "message": "Insufficient credits available"},
    }


@pytest.mark.parametrize(
    "value, rgb",
    [("#1E90FF", [30, 144, 255]), ("#abc", [170, 187, 204]), ("000000", [0, 0, 0]), ("fff", [255, 255, 255])],
)
def test_hex_colors(value: str, rgb: list[int]) -> None:
    assert hex_rgb(value, "c", hash_required=False) == rgb


@pytest.mark.parametrize("value", ["#12345", "#GGGGGG", "red", "", "#1E90FF ", 255, None])
def test_bad_hex_colors(value) -> None:
    with pytest.raises(InvalidInput):
        hex_rgb(value, "c", hash_required=False)


def test_hash_required_for_pixelcut_style() -> None:
    with pytest.raises(InvalidInput):
        hex_rgb("1E90FF", "c")


@pytest.mark.parametrize(
    "params, exc",
    [
        ({}, MissingParameter),
        ({"videoUrl": ""}, MissingParameter),
        ({"videoUrl": 3}, InvalidInput),
        ({"videoUrl": URL, "back_ground": "#000", "imageUrl": "https://x.example/b.png"}, InvalidInput),
        ({"videoUrl": URL, "start": "soon"}, InvalidInput),
        ({"videoUrl": URL, "start": 10, "end": "00:00:05"}, InvalidInput),
    ],
)
def test_studio_refuses(params, exc) -> None:
    with pytest.raises(exc):
        studio.to_spec(params, ACME)


@pytest.mark.parametrize(
    "fmt, transparent, ours",
    [
        ("webm", True, "webm_vp9"),
        ("mov", True, "mov_proresks"),
        ("mov", False, "mov_h265"),
        ("mp4", False, "mp4_h264"),
        ("gif", True, "gif"),
        ("webp", True, "webp"),
        ("png_sequence", True, "png_sequence"),
        ("mkv_vp9", True, "mkv_vp9"),  # our full names pass through
    ],
)
def test_removebgvideo_formats(fmt, transparent, ours) -> None:
    assert removebgvideo.output_format({"output_format": fmt}, transparent) == ours


@pytest.mark.parametrize("fmt", ["mp4", "mov_h265", "mkv_h264"])
def test_removebgvideo_transparent_needs_alpha(fmt) -> None:
    with pytest.raises(InvalidInput, match="alpha"):
        removebgvideo.output_format({"output_format": fmt}, True)


@pytest.mark.parametrize(
    "value, rgb",
    [
        ([0, 177, 64], [0, 177, 64]),
        ((1, 2, 3), [1, 2, 3]),
        ("#00B140", [0, 177, 64]),
        ("[1,2,3]", [1, 2, 3]),
        ("4, 5, 6", [4, 5, 6]),
    ],
)
def test_removebgvideo_rgb(value, rgb) -> None:
    assert removebgvideo.parse_rgb(value, "bg_color") == rgb


@pytest.mark.parametrize(
    "value", [[0, 0], [0, 0, 0, 0], [0, 0, 256], [-1, 0, 0], [0.5, 0, 0], [True, 0, 0], "green", {}]
)
def test_removebgvideo_bad_rgb(value) -> None:
    with pytest.raises(InvalidInput):
        removebgvideo.parse_rgb(value, "bg_color")


def test_removebgvideo_text_prompt_is_refused_with_reason() -> None:
    with pytest.raises(InvalidInput, match="text_prompt.*not understood"):
        removebgvideo.to_spec({"video_url": URL, "model": "pro", "text_prompt": "the red car"}, ACME)
    with pytest.raises(InvalidInput, match="used with the pro model"):
        removebgvideo.to_spec({"video_url": URL, "text_prompt": "everyone"}, ACME)  # model original
    spec = removebgvideo.to_spec({"video_url": URL, "model": "pro", "text_prompt": " everyone "}, ACME)
    assert spec.text_prompt == "everyone"
    # empty or blank prompts are no prompt
    assert (
        removebgvideo.to_spec({"video_url": URL, "model": "pro", "text_prompt": "  "}, ACME).text_prompt == ""
    )


def test_removebgvideo_job_view_of_a_pixelcut_job() -> None:
    spec = pixelcut.to_spec({"video_url": URL, "background_color": "#ff0000"}, ACME)
    view = removebgvideo.job_view(Job(id="j1", status=Status.QUEUED, spec=spec, model="human"), {})
    assert view["status"] == "processing" and view["output_format"] == "mp4"
    assert view["background"] == {"type": "color", "color": [255, 0, 0]}
    assert view["credits"] == {"reserved": 0.0, "charged": 0.0}


def test_fingerprint_ignores_spelling_not_content() -> None:
    a = idempotency.fingerprint("pixelcut", {"video_url": URL, "output_format": "gif"})
    b = idempotency.fingerprint("pixelcut", {"output_format": "gif", "video_url": URL})
    assert a == b
    assert a != idempotency.fingerprint("pixelcut", {"video_url": URL, "output_format": "webm_vp9"})
    assert a != idempotency.fingerprint("removebgvideo", {"video_url": URL, "output_format": "gif"})
