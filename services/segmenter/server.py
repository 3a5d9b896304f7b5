"""Segmenter service: gRPC `vbg.v1.Segmenter` plus the JetStream worker on vbg.work.segment."""

from __future__ import annotations

import grpc

from services.common import bus
from services.common.runtime import Deps, grpc_server, stage_worker
from services.segmenter.handlers import SegmenterServicer
from services.segmenter.stage import SegmenterSettings, segment, warmup
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import nats_subjects

__all__ = ["SegmenterSettings", "build_server", "build_worker", "warmup"]


def build_server(settings: SegmenterSettings, deps: Deps) -> tuple[grpc.Server, int]:
    def register(server: grpc.Server) -> list[str]:
        stages_pb2_grpc.add_SegmenterServicer_to_server(SegmenterServicer(settings, deps), server)
        return [stages_pb2.DESCRIPTOR.services_by_name["Segmenter"].full_name]

    return grpc_server(deps, register)


def build_worker(settings: SegmenterSettings, deps: Deps) -> bus.Worker:
    return stage_worker(
        deps,
        nats_subjects.WORK_SEGMENT,
        nats_subjects.CONSUMER_SEGMENT,
        "segment",
        lambda run: segment(run, settings),
    )
