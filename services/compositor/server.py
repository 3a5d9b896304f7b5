"""Compositor service: gRPC `vbg.v1.Compositor` only (the encoder pulls from it); no NATS worker."""

from __future__ import annotations

from services.common.stage_wiring import servicer_server
from services.compositor.handlers import CompositorServicer
from services.compositor.stage import CompositorSettings, warmup
from vbg.v1 import stages_pb2_grpc

__all__ = ["CompositorSettings", "build_server", "warmup"]

build_server = servicer_server(
    stages_pb2_grpc.add_CompositorServicer_to_server, CompositorServicer, "Compositor"
)
