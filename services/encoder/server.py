"""Encoder service: gRPC `vbg.v1.Encoder` plus the JetStream worker on vbg.work.encode."""

from __future__ import annotations

from services.common.stage_wiring import queue_worker, servicer_server
from services.encoder.handlers import EncoderServicer
from services.encoder.stage import EncoderSettings, encode
from vbg.v1 import stages_pb2_grpc
from videobg import nats_subjects

__all__ = ["EncoderSettings", "build_server", "build_worker"]

build_server = servicer_server(stages_pb2_grpc.add_EncoderServicer_to_server, EncoderServicer, "Encoder")
build_worker = queue_worker(nats_subjects.WORK_ENCODE, nats_subjects.CONSUMER_ENCODE, "encode", encode)
