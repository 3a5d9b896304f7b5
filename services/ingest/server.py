"""Ingest service: gRPC `vbg.v1.Ingest` plus the JetStream worker on vbg.work.ingest."""

from __future__ import annotations

from services.common.stage_wiring import queue_worker, servicer_server
from services.ingest.handlers import IngestServicer
from services.ingest.stage import IngestSettings, ingest
from vbg.v1 import stages_pb2_grpc
from videobg import nats_subjects

__all__ = ["IngestSettings", "build_server", "build_worker"]

build_server = servicer_server(stages_pb2_grpc.add_IngestServicer_to_server, IngestServicer, "Ingest")
build_worker = queue_worker(nats_subjects.WORK_INGEST, nats_subjects.CONSUMER_INGEST, "ingest", ingest)
