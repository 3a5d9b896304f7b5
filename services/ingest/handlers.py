"""gRPC `vbg.v1.Ingest`: proto -> job id / key -> the ingest stage -> proto."""

from __future__ import annotations

import grpc

from services.common import grpcutil
from services.common.protoconv import info_to_proto
from services.common.record import MediaInfo
from services.common.stage_wiring import StageServicer
from services.ingest.stage import IngestSettings, ingest, probe_object
from vbg.v1 import common_pb2, stages_pb2, stages_pb2_grpc


class IngestServicer(StageServicer, stages_pb2_grpc.IngestServicer):
    settings: IngestSettings

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
        limits = self.settings.core.limits()
        info = probe_object(self.deps.store, request.key, self.settings.work_dir, limits)
        return info_to_proto(MediaInfo.of(info))
