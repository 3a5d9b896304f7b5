"""`light`: MediaPipe Selfie Segmentation, 256x256, stateless; people close to the camera."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from videobg.matte.session import PostConfig
from videobg.models.base import MatteSession, MattingModel, check_frame, resize_u8, to_tensor
from videobg.models.onnx_weights import OnnxModel, graph_convs, initializers, load_convs
from videobg.models.selfie_net import SIZE, SelfieSegmentation
from videobg.models.weights import WEIGHTS

_W = WEIGHTS["light"]


class LightModel(MattingModel):
    name = "light"
    weight_spec = _W
    recurrent = False
    # measured on the DAVIS clips (docs/QUALITY.md): see the README's Models table
    post_defaults = PostConfig(subjects="all", temporal=True, guided=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runner: nn.Module | None = None  # what sessions call: `net`, or on the CPU its frozen trace

    def load(self) -> None:
        super().load()
        if self.runner is None:
            with self._lock:
                if self.runner is None:
                    self.runner = self._compiled()

    def _compiled(self) -> nn.Module:
        """On the CPU in float32, `net` traced and frozen (TorchScript): the same arithmetic, bit for bit
        (tests/unit/test_models.py), without Python's per-layer dispatch, which is most of this small
        network's time at 256x256: 4.1-4.8 ms a frame against 6.5-7.4 (one thread, 2026-12-04). Costs
        ~0.25 s once per process and ~60 ms over the first two calls. Elsewhere `net` itself."""
        assert self.net is not None
        if self.device.type != "cpu" or self.dtype != torch.float32:
            return self.net
        example = torch.zeros(1, 3, SIZE, SIZE).contiguous(memory_format=torch.channels_last)  # as to_tensor
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.compile, which needs a C++ toolchain at run
            # time and minutes of compiling on this CPU; it still works and is kept while it does
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(self.net, example, check_trace=False)
            return torch.jit.freeze(traced.eval())

    def build(self, proto: OnnxModel) -> nn.Module:
        net = SelfieSegmentation()
        load_convs(net, graph_convs(proto))
        # tf2onnx folded the output conv's bias into the Add after it
        (add,) = [n for n in proto.graph.node if n.op_type == "Add" and n.input[0] == "segment:0"]
        with torch.no_grad():
            net.segment.bias.fill_(float(initializers(proto)[add.input[1]].item()))
        return net

    def new_session(self, **opts: Any) -> LightSession:
        post, rest = self.split_options(opts, {"threads"})
        return LightSession(self, post=post, **rest)


class LightSession(MatteSession):
    def __init__(self, model: LightModel, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        assert model.runner is not None
        self.runner = model.runner

    def prepare(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        for f in frames:
            check_frame(f)
        small = [resize_u8(f, SIZE, SIZE) for f in frames]  # N x [256, 256, 3] uint8 (stretched)
        if not frames:
            return small, np.zeros((0, SIZE, SIZE), np.float32)
        with torch.inference_mode():
            x = to_tensor(small, self.device, self.dtype)  # [N, 3, 256, 256] 0..1
            prob = self.runner(x)[:, 0].float().cpu().numpy()  # [N, 256, 256] float32 0..1
        return small, prob

    def finish(self, frames: list[np.ndarray], inferred: Any) -> list[np.ndarray]:
        small, prob = inferred if inferred is not None else self.prepare(frames)
        # in order: the temporal and subject steps carry state from frame to frame
        return [self.post.finish_low_res(f, s, p) for f, s, p in zip(frames, small, prob, strict=True)]
