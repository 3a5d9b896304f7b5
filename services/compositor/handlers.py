"""gRPC `vbg.v1.Compositor`: job id -> composited frames -> a stream of FrameBand messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from services.common import grpcutil
from services.common.jobrun import close_all
from services.common.stage_wiring import StageServicer
from services.compositor.bands import to_bands
from services.compositor.stage import CompositorSettings, composite_frames
from vbg.v1 import stages_pb2, stages_pb2_grpc


class CompositorServicer(StageServicer, stages_pb2_grpc.CompositorServicer):
    settings: CompositorSettings

    @grpcutil.mapped
    def Composite(
        self, request: stages_pb2.StageRequest, context: grpc.ServicerContext
    ) -> Iterator[stages_pb2.FrameBand]:
        gone = threading.Event()  # the caller cancelled or the RPC deadline passed
        context.add_callback(gone.set)
        remaining = context.time_remaining()
        run = self.deps.stage_run("composite", request.job_id, deadline_s=remaining, cancel=gone)
        frames = composite_frames(run, self.settings)
        try:
            for frame in frames:  # in the layout the job's encoder takes (bands.Layout)
                yield from to_bands(frame)
        finally:
            close_all(frames)  # stops the decode/matte/refine threads when the caller goes away
