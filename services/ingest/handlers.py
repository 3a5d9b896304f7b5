"""gRPC `vbg.v1.Ingest`: proto -> job id / key -> the ingest stage -> proto."""

from __future__ import annotations

from typing import Any

import grpc

from services.common import grpcutil
from services.common.runtime import Deps
from services.ingest.stage import IngestSettings, info_to_dict, ingest, probe_object
from vbg.v1 import common_pb2, stages_pb2, stages_pb2_grpc


def info_to_proto(info: dict[str, Any]) -> common_pb2.VideoInfo:
    """The record's info dict (stage.info_to_dict) -> vbg.v1.VideoInfo."""
    return common_pb2.VideoInfo(
        container=info.get("container", ""),
        size_bytes=int(info.get("size_bytes", 0)),
        duration_s=float(info.get("duration_s", 0.0)),
        width=int(info.get("width", 0)),
        height=int(info.get("height", 0)),
        rotation=int(info.get("rotation", 0)),
        fps_nominal=float(info.get("fps_nominal", 0.0)),
        fps_avg=float(info.get("fps_avg", 0.0)),
        frame_count=int(info.get("frame_count", 0)),
        video_codec=info.get("video_codec", ""),
        pix_fmt=info.get("pix_fmt", ""),
        bit_depth=int(info.get("bit_depth", 0)),
        audio=[
            common_pb2.AudioInfo(
                index=a["index"],
                codec=a["codec"],
                channels=a["channels"],
                sample_rate=a["sample_rate"],
                layout=a["layout"],
            )
            for a in info.get("audio", [])
        ],
    )


class IngestServicer(stages_pb2_grpc.IngestServicer):
    def __init__(self, settings: IngestSettings, deps: Deps):
        self.settings = settings
        self.deps = deps

    @grpcutil.mapped
    def Ingest(
        self, request: stages_pb2.StageRequest, context: grpc.ServicerContext
    ) -> stages_pb2.IngestReply:
        result = self.deps.run_stage("ingest", request.job_id, lambda run: ingest(run, self.settings))
        return stages_pb2.IngestReply(
            source_key=result.source_key,
            info=info_to_proto(result.info),
            billed_seconds=result.billed_seconds,
        )

    @grpcutil.mapped
    def Probe(self, request: stages_pb2.ProbeRequest, context: grpc.ServicerContext) -> common_pb2.VideoInfo:
        limits = self.settings.core().limits()
        info = probe_object(self.deps.store, request.key, self.settings.work_dir, limits)
        return info_to_proto(info_to_dict(info))
