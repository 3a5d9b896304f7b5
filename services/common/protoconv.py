"""Record types <-> protos (`vbg.v1`): the job spec both ways and the stored probe out. The gRPC APIs
(gateway Jobs, the stage services) convert through here, so each field has one translation."""

from __future__ import annotations

from services.common.record import BackgroundKind, BackgroundSpec, JobSpec, MediaInfo, SourceRef, TrimSpec
from vbg.v1 import common_pb2
from videobg.media.formats import DEFAULT_FORMAT

_KIND_TO_PROTO: dict[BackgroundKind, common_pb2.Background.Kind] = {
    "white": common_pb2.Background.WHITE,
    "color": common_pb2.Background.COLOR,
    "image": common_pb2.Background.IMAGE,
    "transparent": common_pb2.Background.TRANSPARENT,
}
_PROTO_TO_KIND: dict[int, BackgroundKind] = {v: k for k, v in _KIND_TO_PROTO.items()}
_PROTO_TO_KIND[common_pb2.Background.KIND_UNSPECIFIED] = "white"


def _source_from_proto(src: common_pb2.Source) -> SourceRef | None:
    which = src.WhichOneof("kind")
    if which is None:
        return None
    return SourceRef.model_validate({which: getattr(src, which)})


def _source_to_proto(ref: SourceRef | None) -> common_pb2.Source:
    if not ref:
        return common_pb2.Source()
    if ref.url:
        return common_pb2.Source(url=ref.url)
    return common_pb2.Source(asset_id=ref.asset_id)


def spec_from_proto(p: common_pb2.JobSpec) -> JobSpec:
    """A submitted proto spec, checked (JobSpec.validated)."""
    kind = _PROTO_TO_KIND[p.background.kind]
    rgb = p.background.rgb
    spec = JobSpec(
        source=_source_from_proto(p.source),
        trim=TrimSpec(start=p.trim.start_s, end=p.trim.end_s if p.trim.end_s > 0 else None),
        model=p.model,
        background=BackgroundSpec(
            kind=kind,
            rgb=((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255) if kind == "color" else (255, 255, 255),
            image=_source_from_proto(p.background.image) if p.background.HasField("image") else None,
        ),
        output_format=p.output_format or DEFAULT_FORMAT,
        webhook_url=p.webhook_url,
        text_prompt=p.text_prompt,
        owner=p.owner,
        dialect=p.dialect or "grpc",
    )
    return spec.validated()


def spec_to_proto(spec: JobSpec) -> common_pb2.JobSpec:
    r, g, b = spec.background.rgb
    p = common_pb2.JobSpec(
        source=_source_to_proto(spec.source),
        trim=common_pb2.Trim(start_s=spec.trim.start, end_s=spec.trim.end or 0.0),
        model=spec.model,
        background=common_pb2.Background(
            kind=_KIND_TO_PROTO[spec.background.kind], rgb=(r << 16) | (g << 8) | b
        ),
        output_format=spec.output_format,
        webhook_url=spec.webhook_url,
        owner=spec.owner,
        dialect=spec.dialect,
        text_prompt=spec.text_prompt,
    )
    if spec.background.image:
        p.background.image.CopyFrom(_source_to_proto(spec.background.image))
    return p


def info_to_proto(info: MediaInfo) -> common_pb2.VideoInfo:
    """The stored probe -> vbg.v1.VideoInfo (frame rates as doubles)."""
    return common_pb2.VideoInfo(
        container=info.container,
        size_bytes=info.size_bytes,
        duration_s=info.duration_s,
        width=info.width,
        height=info.height,
        rotation=info.rotation,
        fps_nominal=float(info.fps_nominal),
        fps_avg=float(info.fps_avg),
        frame_count=info.frame_count,
        video_codec=info.video_codec,
        pix_fmt=info.pix_fmt,
        bit_depth=info.bit_depth,
        audio=[common_pb2.AudioInfo(**a.model_dump()) for a in info.audio],
    )
