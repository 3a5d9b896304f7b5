"""Object-key layout in the one S3 bucket every stage shares.

    uploads/{asset_id}                      a user upload, before any job references it
    jobs/{job_id}/source{ext}               the job's input, copied or fetched by ingest (ext: ".mp4", ...)
    jobs/{job_id}/background{ext}           an image background, fetched or copied by ingest (ext: ".png", ...)
    jobs/{job_id}/matte/{chunk:06d}.matte   alpha mattes for one chunk of frames, written by the segmenter
    jobs/{job_id}/matte/manifest.json       written last by the segmenter: chunk count, frame count, fps
    jobs/{job_id}/result{ext}               the encoder's output, the only key a user downloads

Everything a job produces lives under `jobs/{job_id}/`, so deleting a job is one prefix delete
(`job_prefix`). Chunk numbers are zero-padded so a lexical listing is also the frame order. Keys carry no
user-supplied text except ids that `check_id` has vetted, so a caller cannot escape its prefix.
"""

from __future__ import annotations

import re

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_EXT = re.compile(r"^(\.[A-Za-z0-9]{1,8})?$")


def check_id(kind: str, value: str) -> str:
    """Ids (job, asset) are 1..128 of [A-Za-z0-9_-]: safe as a key segment, a NATS subject token and a
    KV key alike."""
    if not _ID.match(value):
        raise ValueError(f"invalid {kind} {value!r}: want [A-Za-z0-9_-], 1..128 chars")
    return value


def _check_ext(ext: str) -> str:
    if not _EXT.match(ext):
        raise ValueError(f"invalid extension {ext!r}: want '' or '.' + up to 8 alphanumerics")
    return ext


def upload(asset_id: str) -> str:
    return f"uploads/{check_id('asset_id', asset_id)}"


def job_prefix(job_id: str) -> str:
    return f"jobs/{check_id('job_id', job_id)}/"


def source(job_id: str, ext: str) -> str:
    return f"{job_prefix(job_id)}source{_check_ext(ext)}"


def background(job_id: str, ext: str) -> str:
    return f"{job_prefix(job_id)}background{_check_ext(ext)}"


def matte_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}matte/"


def matte_chunk(job_id: str, chunk: int) -> str:
    if not 0 <= chunk <= 999_999:
        raise ValueError(f"chunk index out of range: {chunk}")
    return f"{matte_prefix(job_id)}{chunk:06d}.matte"


def matte_manifest(job_id: str) -> str:
    return f"{matte_prefix(job_id)}manifest.json"


def result(job_id: str, ext: str) -> str:
    return f"{job_prefix(job_id)}result{_check_ext(ext)}"
