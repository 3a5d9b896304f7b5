"""Segmenter service: gRPC `vbg.v1.Segmenter` plus the JetStream worker on vbg.work.segment."""

from __future__ import annotations

from services.common.stage_wiring import queue_worker, servicer_server
from services.segmenter.handlers import SegmenterServicer
from services.segmenter.stage import SegmenterSettings, segment, warmup
from vbg.v1 import stages_pb2_grpc
from videobg import nats_subjects

__all__ = ["SegmenterSettings", "build_server", "build_worker", "warmup"]

build_server = servicer_server(
    stages_pb2_grpc.add_SegmenterServicer_to_server, SegmenterServicer, "Segmenter"
)
build_worker = queue_worker(nats_subjects.WORK_SEGMENT, nats_subjects.CONSUMER_SEGMENT, "segment", segment)
