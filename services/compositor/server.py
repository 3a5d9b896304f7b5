"""Compositor service: gRPC `vbg.v1.Compositor` only (the encoder pulls from it); no NATS worker."""

from __future__ import annotations

import grpc

from services.common.runtime import Deps, grpc_server
from services.compositor.handlers import CompositorServicer
from services.compositor.stage import CompositorSettings
from vbg.v1 import stages_pb2, stages_pb2_grpc

__all__ = ["CompositorSettings", "build_server"]


def build_server(settings: CompositorSettings, deps: Deps) -> tuple[grpc.Server, int]:
    def register(server: grpc.Server) -> list[str]:
        stages_pb2_grpc.add_CompositorServicer_to_server(CompositorServicer(settings, deps), server)
        return [stages_pb2.DESCRIPTOR.services_by_name["Compositor"].full_name]

    return grpc_server(deps, register)
