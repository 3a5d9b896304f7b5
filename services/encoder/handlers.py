"""gRPC `vbg.v1.Encoder`: proto -> job id -> the encode stage -> proto."""

from __future__ import annotations

import grpc

from services.common import grpcutil
from services.common.stage_wiring import StageServicer
from services.encoder.stage import EncoderSettings, encode
from vbg.v1 import stages_pb2, stages_pb2_grpc


class EncoderServicer(StageServicer, stages_pb2_grpc.EncoderServicer):
    settings: EncoderSettings

    @grpcutil.mapped
    def Encode(
        self, request: stages_pb2.StageRequest, context: grpc.ServicerContext
    ) -> stages_pb2.EncodeReply:
        result = self.deps.run_stage("encode", request.job_id, lambda run: encode(run, self.settings))
        return stages_pb2.EncodeReply(
            result_key=result.result_key, frames=result.frames, size_bytes=result.size_bytes
        )
