"""`original`: U²-Net small, rembg's general salient-object model, 320x320, stateless."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import onnx
import torch
from torch import nn

from videobg.errors import InvalidInput
from videobg.models.base import (
    MatteSession,
    MattingModel,
    check_frame,
    check_opts,
    resize_u8,
    to_tensor,
    upsample_alpha,
)
from videobg.models.onnx_weights import graph_convs, load_convs
from videobg.models.u2net_net import SIZE, U2NetP
from videobg.models.weights import WEIGHTS

_W = WEIGHTS["original"]


class OriginalModel(MattingModel):
    name = "original"
    weight_file = _W.file
    sha256 = _W.sha256
    source = _W.source
    licence = _W.licence
    recurrent = False

    def build(self, proto: onnx.ModelProto) -> nn.Module:
        net = U2NetP()
        load_convs(net, graph_convs(proto))
        return net

    def new_session(self, **opts: Any) -> OriginalSession:
        check_opts(self.name, opts, {"threads", "minmax"})
        return OriginalSession(self, **opts)


class OriginalSession(MatteSession):
    def __init__(self, model: OriginalModel, threads: int | None = None, minmax: bool = True):
        super().__init__(model, threads)
        self.u2 = cast(U2NetP, self.net)
        if not isinstance(minmax, bool):
            raise InvalidInput(f"minmax must be a boolean, got {minmax!r}")
        # rembg stretches each map to 0..1; it also lifts a frame with no salient object to full range
        self.minmax = minmax

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return self.predict_batch([rgb])[0]

    def predict_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if not frames:
            return []
        for f in frames:
            check_frame(f)
        small = [resize_u8(f, SIZE, SIZE, area=True) for f in frames]  # N x [320, 320, 3] uint8
        with torch.inference_mode():
            x = to_tensor(small, self.device, self.dtype)  # [N, 3, 320, 320] 0..1
            # rembg divides by the image's own max before the ImageNet normalisation
            peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1.0 / 255.0)
            sal = self.u2(self.u2.normalise(x / peak))[:, 0].float()  # [N, 320, 320] 0..1
            if self.minmax:
                lo = sal.amin(dim=(1, 2), keepdim=True)
                hi = sal.amax(dim=(1, 2), keepdim=True)
                sal = (sal - lo) / (hi - lo).clamp_min(1e-6)
            maps = sal.cpu().numpy()
        return [upsample_alpha(m, f.shape[1], f.shape[0]) for m, f in zip(maps, frames, strict=True)]
