"""Ingest service: gRPC `vbg.v1.Ingest` plus the JetStream worker on vbg.work.ingest."""

from __future__ import annotations

import grpc

from services.common import bus
from services.common.runtime import Deps, grpc_server, stage_worker
from services.ingest.handlers import IngestServicer
from services.ingest.stage import IngestSettings, ingest
from vbg.v1 import stages_pb2, stages_pb2_grpc
from videobg import nats_subjects

__all__ = ["IngestSettings", "build_server", "build_worker"]


def build_server(settings: IngestSettings, deps: Deps) -> tuple[grpc.Server, int]:
    def register(server: grpc.Server) -> list[str]:
        stages_pb2_grpc.add_IngestServicer_to_server(IngestServicer(settings, deps), server)
        return [stages_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name]

    return grpc_server(deps, register)


def build_worker(settings: IngestSettings, deps: Deps) -> bus.Worker:
    return stage_worker(
        deps,
        nats_subjects.WORK_INGEST,
        nats_subjects.CONSUMER_INGEST,
        "ingest",
        lambda run: ingest(run, settings),
    )
