"""`light`: MediaPipe Selfie Segmentation, 256x256, stateless; people close to the camera."""

from __future__ import annotations

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
    def prepare(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
        for f in frames:
            check_frame(f)
        small = [resize_u8(f, SIZE, SIZE) for f in frames]  # N x [256, 256, 3] uint8 (stretched)
        if not frames:
            return small, np.zeros((0, SIZE, SIZE), np.float32)
        with torch.inference_mode():
            x = to_tensor(small, self.device, self.dtype)  # [N, 3, 256, 256] 0..1
            prob = self.net(x)[:, 0].float().cpu().numpy()  # [N, 256, 256] float32 0..1
        return small, prob

    def finish(self, frames: list[np.ndarray], inferred: Any) -> list[np.ndarray]:
        small, prob = inferred if inferred is not None else self.prepare(frames)
        # in order: the temporal and subject steps carry state from frame to frame
        return [self.post.finish_low_res(f, s, p) for f, s, p in zip(frames, small, prob, strict=True)]
