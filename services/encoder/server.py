"""Encoder service: gRPC `vbg.v1.Encoder` plus the JetStream worker on vbg.work.encode."""

from __future__ import annotations

import grpc

from services.common import bus
from services.common.runtime import Deps, grpc_server, stage_worker
from services.encoder.handlers import EncoderServicer
from services.encoder.stage import EncoderSettings, encode
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import nats_subjects

__all__ = ["EncoderSettings", "build_server", "build_worker"]


def build_server(settings: EncoderSettings, deps: Deps) -> tuple[grpc.Server, int]:
    def register(server: grpc.Server) -> list[str]:
        stages_pb2_grpc.add_EncoderServicer_to_server(EncoderServicer(settings, deps), server)
        return [stages_pb2.DESCRIPTOR.services_by_name["Encoder"].full_name]

    return grpc_server(deps, register)


def build_worker(settings: EncoderSettings, deps: Deps) -> bus.Worker:
    return stage_worker(
        deps,
        nats_subjects.WORK_ENCODE,
        nats_subjects.CONSUMER_ENCODE,
        "encode",
        lambda run: encode(run, settings),
    )
