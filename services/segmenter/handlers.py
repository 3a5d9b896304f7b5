"""gRPC `vbg.v1.Segmenter`: proto -> job id -> the segment stage -> proto."""

from __future__ import annotations

import grpc

from services.common import grpcutil
from services.common.stage_wiring import StageServicer
from services.segmenter.stage import SegmenterSettings, segment
from vbg.v1 import stages_pb2, stages_pb2_grpc


class SegmenterServicer(StageServicer, stages_pb2_grpc.SegmenterServicer):
    settings: SegmenterSettings

    @grpcutil.mapped
    def Segment(
        self, request: stages_pb2.StageRequest, context: grpc.ServicerContext
    ) -> stages_pb2.SegmentReply:
        result = self.deps.run_stage("segment", request.job_id, lambda run: segment(run, self.settings))
        return stages_pb2.SegmentReply(
            frames=result.frames, chunks=result.chunks, manifest_key=result.manifest_key
        )
