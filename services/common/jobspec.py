"""The internal job spec in its three shapes: proto `vbg.v1.JobSpec`, the JSON dict kept in the job
record (`record["spec"]`), and the core's plain types (Trim, Background). Every dialect and every stage
converts through here, so there is one translation of each field.

record["spec"] = {
    "source": {"url": str} | {"asset_id": str},
    "trim": {"start": float, "end": float | None},
    "model": str,                      # "" -> the default model
    "background": {"kind": "white|color|image|transparent", "rgb": [r, g, b],
                   "image": {"url": str} | {"asset_id": str} | None},
    "output_format": str,              # our format names (mp4_h264, webm_vp9, ...)
    "webhook_url": str, "text_prompt": str, "owner": str, "dialect": str,
}
"""

from __future__ import annotations

from typing import Any

from vbg.v1 import common_pb2
from videobg.errors import InvalidInput, MissingParameter
from videobg.media.formats import DEFAULT_FORMAT, get_format
from videobg.types import Background, Trim

Spec = dict[str, Any]

_KIND_TO_PROTO = {
    "white": common_pb2.Background.WHITE,
    "color": common_pb2.Background.COLOR,
    "image": common_pb2.Background.IMAGE,
    "transparent": common_pb2.Background.TRANSPARENT,
}
_PROTO_TO_KIND = {v: k for k, v in _KIND_TO_PROTO.items()}
_PROTO_TO_KIND[common_pb2.Background.KIND_UNSPECIFIED] = "white"


def _source_to_dict(src: common_pb2.Source) -> dict[str, str] | None:
    which = src.WhichOneof("kind")
    if which is None:
        return None
    return {which: getattr(src, which)}


def _source_to_proto(d: dict[str, str] | None) -> common_pb2.Source:
    if not d:
        return common_pb2.Source()
    if "url" in d:
        return common_pb2.Source(url=d["url"])
    return common_pb2.Source(asset_id=d["asset_id"])


def from_proto(p: common_pb2.JobSpec) -> Spec:
    bg_kind = _PROTO_TO_KIND[p.background.kind]
    rgb = p.background.rgb
    spec: Spec = {
        "source": _source_to_dict(p.source),
        "trim": {"start": p.trim.start_s, "end": p.trim.end_s if p.trim.end_s > 0 else None},
        "model": p.model,
        "background": {
            "kind": bg_kind,
            "rgb": [(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255]
            if bg_kind == "color"
            else [255, 255, 255],
            "image": _source_to_dict(p.background.image) if p.background.HasField("image") else None,
        },
        "output_format": p.output_format or DEFAULT_FORMAT,
        "webhook_url": p.webhook_url,
        "text_prompt": p.text_prompt,
        "owner": p.owner,
        "dialect": p.dialect or "grpc",
    }
    return validate(spec)


def to_proto(spec: Spec) -> common_pb2.JobSpec:
    bg = spec.get("background") or {}
    r, g, b = bg.get("rgb") or [255, 255, 255]
    trim = spec.get("trim") or {}
    p = common_pb2.JobSpec(
        source=_source_to_proto(spec.get("source")),
        trim=common_pb2.Trim(start_s=trim.get("start") or 0.0, end_s=trim.get("end") or 0.0),
        model=spec.get("model", ""),
        background=common_pb2.Background(
            kind=_KIND_TO_PROTO[bg.get("kind", "white")], rgb=(r << 16) | (g << 8) | b
        ),
        output_format=spec.get("output_format", DEFAULT_FORMAT),
        webhook_url=spec.get("webhook_url", ""),
        owner=spec.get("owner", ""),
        dialect=spec.get("dialect", ""),
        text_prompt=spec.get("text_prompt", ""),
    )
    if bg.get("image"):
        p.background.image.CopyFrom(_source_to_proto(bg["image"]))
    return p


def validate(spec: Spec) -> Spec:
    """Checks that do not need the video: fail fast at submit time, with the public error codes."""
    if not spec.get("source"):
        raise MissingParameter("a source video (URL or uploaded asset) is required")
    bg = spec.get("background") or {"kind": "white"}
    if bg.get("kind") not in _KIND_TO_PROTO:
        raise InvalidInput(f"unknown background kind {bg.get('kind')!r}")
    if bg["kind"] == "image" and not bg.get("image"):
        raise MissingParameter("an image background needs an image URL or asset")
    get_format(spec.get("output_format") or DEFAULT_FORMAT, transparent=bg["kind"] == "transparent")
    trim = spec.get("trim") or {}
    start, end = trim.get("start") or 0.0, trim.get("end")
    if start < 0 or (end is not None and end <= start):
        raise InvalidInput("trim: end must be after start, and start must not be negative")
    return spec


def trim_of(spec: Spec) -> Trim:
    t = spec.get("trim") or {}
    return Trim(float(t.get("start") or 0.0), None if t.get("end") is None else float(t["end"]))


def background_of(spec: Spec, image_path: str | None = None) -> Background:
    """The core Background; an image background needs the local path the stage downloaded it to."""
    bg = spec.get("background") or {"kind": "white"}
    kind = bg.get("kind", "white")
    if kind == "white":
        return Background(kind="white")
    if kind == "transparent":
        return Background(kind="transparent")
    if kind == "color":
        r, g, b = bg["rgb"]
        return Background(kind="color", rgb=(int(r), int(g), int(b)))
    return Background(kind="image", image_path=image_path)
