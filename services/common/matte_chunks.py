"""The matte chunk format: consecutive frames' alpha mattes as one S3 object, segmenter -> compositor.

    offset  size     field
    0       4        magic b"VBGM"
    4       4        version (uint32 little-endian, 1)
    8       8        index0: the first frame's index in the job's span (int64)
    16      4        frames N (uint32)
    20      4        height H, 24: width W (uint32 each)
    28      8*N      t: each frame's time in seconds since the span start (float64)
    28+8N   rest     alpha [N, H, W] uint8 as one zlib stream (deflate level 1, Adler-32 checked)

Why not .npz (the format before): a zip of .npy members went through Python's zipfile both ways, ~5.5 ms
of CPU a 720p frame for writing and reading, against ~2.5 ms for the same deflate stream written and read
in one call (docs/BENCHMARKS.md, issue 15). The same arrays always give the same bytes, so a redelivered
job rewrites identical objects. A reader never inflates more than the header's N*H*W bytes, and the caller
checks H and W against the job's probe, so a damaged or forged object cannot make it allocate more.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from videobg.errors import VideoBgError

MAGIC = b"VBGM"
VERSION = 1
_HEADER = struct.Struct("<4sIqIII")  # magic, version, index0, frames, height, width
_LEVEL = 1  # deflate level: mattes are mostly 0 and 255, level 1 already gives ~1.4 % of raw size
MAX_BYTES = 64 * 1024 * 1024  # cap on one chunk's raw alpha, whatever chunk_frames says (8 frames at 4K)


def frames_per_chunk(wanted: int, height: int, width: int) -> int:
    """`wanted` frames, fewer where their raw alpha would pass MAX_BYTES (at least 1)."""
    return max(1, min(wanted, MAX_BYTES // max(1, height * width)))


@dataclass(frozen=True)
class MatteChunk:
    index0: int  # the first frame's index within the job's span
    t: np.ndarray  # [N] float64, seconds since the span start
    alpha: np.ndarray  # [N, H, W] uint8 (read-only when decoded)

    def __len__(self) -> int:
        return len(self.alpha)


def encode(index0: int, alphas: list[np.ndarray], times: list[float]) -> bytes:
    """N mattes [H, W] uint8 of consecutive frames -> the chunk's bytes."""
    if not alphas or len(alphas) != len(times):
        raise ValueError(f"{len(alphas)} mattes for {len(times)} times")
    h, w = alphas[0].shape
    if any(a.shape != (h, w) for a in alphas):
        raise ValueError("mattes of one chunk differ in size")
    z = zlib.compressobj(_LEVEL)
    body = [z.compress(np.ascontiguousarray(a, np.uint8).data) for a in alphas]
    head = _HEADER.pack(MAGIC, VERSION, index0, len(alphas), h, w)
    return b"".join([head, np.asarray(times, "<f8").tobytes(), *body, z.flush()])


def decode(data: bytes, *, height: int, width: int) -> MatteChunk:
    """The chunk's bytes -> MatteChunk, checking its frame size against (height, width) and its raw size
    against MAX_BYTES before anything is inflated."""
    if len(data) < _HEADER.size:
        raise broken(f"chunk of {len(data)} bytes is shorter than its header")
    magic, version, index0, n, h, w = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise broken(f"not a version {VERSION} matte chunk ({magic!r}, version {version})")
    most = frames_per_chunk(2**31, height, width)
    if (h, w) != (height, width) or not 0 < n <= most:
        raise broken(f"chunk holds {n} frames of {w}x{h}, expected 1..{most} of {width}x{height}")
    t_end = _HEADER.size + 8 * n
    t = np.frombuffer(data, "<f8", count=n, offset=_HEADER.size).astype(np.float64)
    size = n * h * w
    z = zlib.decompressobj()
    try:
        raw = z.decompress(memoryview(data)[t_end:], size)
        # inflating stops at `size` bytes: what is left must be the stream's end (and its checksum) alone
        extra = z.decompress(z.unconsumed_tail, 1) if len(raw) == size and not z.eof else b""
    except zlib.error as e:
        raise broken(f"alpha stream damaged: {e}") from e
    if len(raw) != size or extra or not z.eof or z.unused_data:
        raise broken(f"alpha stream holds other than {n}x{h}x{w} bytes")
    return MatteChunk(int(index0), t, np.frombuffer(raw, np.uint8).reshape(n, h, w))


def broken(msg: str) -> VideoBgError:
    # the segmenter wrote it: a damaged object or a bug, never the user's input
    return VideoBgError(f"matte chunk unreadable: {msg}", code="internal_error")
