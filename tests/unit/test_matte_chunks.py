"""The matte chunk format (services/common/matte_chunks.py): round trip, and what a damaged chunk does."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from services.common import matte_chunks
from videobg.errors import VideoBgError

H, W = 36, 52


def _mattes(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = np.zeros((H, W), np.uint8)
        a[8:30, 10:40] = 255
        a[7, 10:40] = rng.integers(1, 255, 30)  # a soft edge
        out.append(a)
    return out


def test_round_trip_keeps_every_value_and_is_deterministic():
    alphas, times = _mattes(5), [0.0, 0.04, 0.08, 0.12, 0.16]
    data = matte_chunks.encode(40, alphas, times)
    assert data == matte_chunks.encode(40, [a.copy() for a in alphas], list(times))  # same bytes again
    chunk = matte_chunks.decode(data, height=H, width=W)
    assert chunk.index0 == 40 and len(chunk) == 5
    assert chunk.alpha.dtype == np.uint8 and chunk.alpha.shape == (5, H, W)
    assert np.array_equal(chunk.alpha, np.stack(alphas))
    assert chunk.t.dtype == np.float64 and chunk.t.tolist() == times
    assert len(data) < 0.2 * 5 * H * W  # compressed


def test_a_chunk_of_another_frame_size_is_refused_before_inflating():
    data = matte_chunks.encode(0, _mattes(2), [0.0, 0.1])
    with pytest.raises(VideoBgError, match="expected 1.. *[0-9]+ of 53x36") as e:
        matte_chunks.decode(data, height=H, width=W + 1)
    assert e.value.code == "internal_error"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:10],  # shorter than the header
        lambda d: b"PK\x03\x04" + d[4:],  # another format (the old .npz)
        lambda d: d[:-6],  # stream cut short
        lambda d: d[:-1] + bytes([d[-1] ^ 1]),  # checksum wrong
        lambda d: d + b"\x00",  # bytes after the stream
    ],
    ids=["short", "magic", "truncated", "checksum", "trailing"],
)
def test_a_damaged_chunk_is_an_internal_error_not_a_crash(damage):
    data = matte_chunks.encode(0, _mattes(3), [0.0, 0.1, 0.2])
    with pytest.raises(VideoBgError) as e:
        matte_chunks.decode(damage(data), height=H, width=W)
    assert e.value.code == "internal_error"


def test_a_header_claiming_more_frames_than_it_holds_is_refused():
    data = bytearray(matte_chunks.encode(0, _mattes(2), [0.0, 0.1]))
    data[16:20] = (3).to_bytes(4, "little")  # says 3 frames; the times and the stream hold 2
    with pytest.raises(VideoBgError):
        matte_chunks.decode(bytes(data), height=H, width=W)


def test_a_stream_that_inflates_past_its_frames_stops_at_their_size():
    # a forged chunk: a header for 1 frame, then a stream of 1000 frames' worth of zeros
    head = matte_chunks.encode(0, _mattes(1), [0.0])[: 28 + 8]
    bomb = zlib.compress(bytes(1000 * H * W), 9)
    with pytest.raises(VideoBgError, match="other than 1x36x52"):
        matte_chunks.decode(head + bomb, height=H, width=W)


def test_frames_per_chunk_caps_the_raw_size():
    assert matte_chunks.frames_per_chunk(32, 720, 1280) == 32
    four_k = matte_chunks.frames_per_chunk(32, 2160, 3840)
    assert 1 <= four_k < 32 and four_k * 2160 * 3840 <= matte_chunks.MAX_BYTES
    assert matte_chunks.frames_per_chunk(32, 100_000, 100_000) == 1
