"""`human`: Robust Video Matting (MobileNetV3), recurrent, person-only, alpha refined at full resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videobg.errors import InvalidInput
from videobg.matte.session import PostConfig
from videobg.matte.subject import SaliencyRead
from videobg.models.base import MatteSession, MattingModel, check_frame, resize_u8, to_tensor
from videobg.models.onnx_weights import OnnxModel, graph_convs, load_convs
from videobg.models.rvm_net import RVM
from videobg.models.weights import WEIGHTS

_W = WEIGHTS["human"]

DEFAULT_INTERNAL = 320  # long side the network sees; the authors suggest 256-512


class HumanModel(MattingModel):
    name = "human"
    weight_spec = _W
    recurrent = True
    # RVM is recurrent (steady on its own) and refines its alpha at full resolution with its own deep
    # guided filter: only the choice of subject is added (docs/QUALITY.md)
    post_defaults = PostConfig(subjects="main", anchor=True)
    default_internal = DEFAULT_INTERNAL
    default_area = False

    def build(self, proto: OnnxModel) -> nn.Module:
        net = RVM()
        load_convs(net, graph_convs(proto))
        return net

    def new_session(self, **opts: Any) -> HumanSession:
        post, rest = self.split_options(opts, {"threads", "internal_size", "downsample_ratio", "area"})
        rest.setdefault("internal_size", self.default_internal)
        rest.setdefault("area", self.default_area)
        return HumanSession(self, post=post, **rest)


def choose_ratio(height: int, width: int, internal_size: int = DEFAULT_INTERNAL) -> float:
    """Downsample ratio that brings the long side to about `internal_size` px (never upsamples)."""
    return min(1.0, internal_size / max(height, width))


class HumanSession(MatteSession):
    """Carries RVM's four recurrent states from frame to frame of one stream."""

    def __init__(
        self,
        model: HumanModel,
        threads: int | None = None,
        internal_size: int = DEFAULT_INTERNAL,
        downsample_ratio: float | None = None,
        area: bool = False,
        post: PostConfig | None = None,
    ):
        super().__init__(model, threads, post)
        self.rvm = cast(RVM, self.net)
        if not 32 <= internal_size <= 4096:
            raise InvalidInput(f"internal_size must be 32..4096 px, got {internal_size}")
        if downsample_ratio is not None and not 0.0 < downsample_ratio <= 1.0:
            raise InvalidInput(f"downsample_ratio must be in (0, 1], got {downsample_ratio}")
        if not isinstance(area, bool):
            raise InvalidInput(f"area must be a boolean, got {area!r}")
        self.internal_size = internal_size
        self.downsample_ratio = downsample_ratio
        self.area = area  # average pixels when shrinking the frame (antialiased) instead of bilinear taps
        self._frame_shape: tuple[int, int] | None = None  # (H, W) the recurrent state belongs to
        self._post_shape: tuple[int, ...] | None = None  # (H, W) the post-processing state belongs to
        self.reset()

    def reset(self) -> None:
        self._reset_state()
        self.post.reset()

    def _reset_state(self) -> None:
        zero = torch.zeros(1, 1, 1, 1, device=self.device, dtype=self.dtype)
        self._rec: list[Tensor] = [zero] * 4  # broadcast to each state's shape on the first frame

    def _net_size(self, height: int, width: int) -> tuple[int, int]:
        """(w, h) the network runs at for a frame of this size. Pure: `prepare` calls it off-thread."""
        if self.downsample_ratio is not None:  # floor, like the export's Resize
            size = (math.floor(width * self.downsample_ratio), math.floor(height * self.downsample_ratio))
        else:
            scale = choose_ratio(height, width, self.internal_size)
            size = (round(width * scale), round(height * scale))
        return max(1, size[0]), max(1, size[1])

    def prepare(self, frames: list[np.ndarray]) -> _Prepared | None:
        """Resize and run RVM's encoder and LR-ASPP (no recurrent state: about half the network's time)
        on N frames of one size. None for an empty batch or one whose frame size changes inside it."""
        for f in frames:
            check_frame(f)
        if not frames or any(f.shape != frames[0].shape for f in frames):
            return None
        height, width = frames[0].shape[:2]
        # N x [h, w, 3] uint8, bilinear without antialias like the export. cv2 maps the two sizes onto
        # each other (the export samples with 1/ratio), so when size * ratio is not whole the sampling
        # grids differ by under a pixel; it also keeps the low-res grid aligned with the upsampling
        # of the guided-filter coefficients below, which the export does by size.
        small = [resize_u8(f, *self._net_size(height, width), area=self.area) for f in frames]
        with torch.inference_mode():
            src_sm = to_tensor(small, self.device, self.dtype)  # [N, 3, h, w] 0..1
            features = self.rvm.features(src_sm)
        # pro's saliency network, per frame and stateless: here too, off the in-order threads
        return _Prepared((height, width), src_sm, features, self.post.saliency_ahead(frames))

    def infer(self, frames: list[np.ndarray], prepared: Any) -> _Inferred:
        """N consecutive frames of this stream -> the recurrent decoder's output for each (with pro's
        saliency maps from `prepare`, passed on to `finish`). Only the blocks that carry state run here,
        in order; the rest of the network and the full-resolution alpha wait for `finish`, on another
        thread, so this step (the one no other thread can share) stays short. A change of frame size
        splits the batch and restarts the state."""
        if not frames:
            return _Inferred([], None)
        if prepared is None:
            for f in frames:
                check_frame(f)
            cut = next((i for i, f in enumerate(frames) if f.shape != frames[0].shape), len(frames))
            if cut < len(frames):
                return self.infer(frames[:cut], None) + self.infer(frames[cut:], None)
            prepared = self.prepare(frames)
        if self._frame_shape != prepared.shape:
            self._frame_shape = prepared.shape
            self._reset_state()  # the states' shapes follow the internal size
        with torch.inference_mode():
            x1, *rec = self.rvm.decode_seq(prepared.src_sm, prepared.features, *self._rec)
            self._rec = rec
        return _Inferred([(prepared.src_sm, x1)], prepared.saliency)

    def _alphas(self, frames: list[np.ndarray], inferred: _Inferred) -> list[np.ndarray]:
        """The stateless rest of the network (decode0, guided-filter fit) and the full-resolution alpha:
        N raw alphas [H, W] float32 0..1, before the post-processing."""
        alphas: list[np.ndarray] = []
        with torch.inference_mode():
            for src_sm, x1 in inferred.parts:
                part = frames[len(alphas) : len(alphas) + src_sm.shape[0]]
                # only the alpha row of the guided-filter affine is needed: alpha = A * mean(rgb) + b
                # at full resolution
                a, b = self.rvm.refine_seq(src_sm, x1, alpha_only=True)  # [n, 1, h, w] each
                if self.device.type == "cpu":
                    a3, b3 = a[:, 0].float().numpy(), b[:, 0].float().numpy()  # [n, h, w] each
                    alphas += [_fine_alpha_cv2(a3[i], b3[i], f) for i, f in enumerate(part)]
                else:
                    ab = torch.cat([a, b], dim=1)  # [n, 2, h, w]
                    alphas += _fine_alpha_torch(ab, part, self.dtype)
        return alphas

    def finish(self, frames: list[np.ndarray], inferred: Any) -> list[np.ndarray]:
        done = inferred if inferred is not None else self.infer(frames, None)
        alphas = self._alphas(frames, done)
        sal = done.saliency or [None] * len(frames)
        out = []
        for f, alpha, s in zip(frames, alphas, sal, strict=True):  # in order: subject state
            if f.shape[:2] != self._post_shape:
                self._post_shape = f.shape[:2]
                self.post.reset()  # a new frame size starts the subject and temporal steps afresh
            out.append(self.post.full_res(f, alpha, s))
        return out


@dataclass
class _Prepared:
    shape: tuple[int, int]  # (H, W) of the frames
    src_sm: Tensor  # [N, 3, h, w] 0..1 on the device
    features: tuple[Tensor, Tensor, Tensor, Tensor]  # RVM.features: f4 after LR-ASPP, k1..k3
    saliency: list[SaliencyRead] | None = None  # pro: the gate's saliency read of each frame


@dataclass
class _Inferred:
    # per run of same-size frames, in order: src_sm [n, 3, h, w] and the recurrent decoder's x1
    # [n, 32, h/2, w/2] (what `RVM.refine_seq` takes)
    parts: list[tuple[Tensor, Tensor]]
    saliency: list[SaliencyRead] | None  # pro: the gate's saliency read of each frame, from `prepare`

    def __add__(self, other: _Inferred) -> _Inferred:  # the two halves of a batch split by a size change
        sal = None if self.saliency is None or other.saliency is None else self.saliency + other.saliency
        return _Inferred(self.parts + other.parts, sal)


_GRAY = np.full((1, 3), 1.0 / 765.0, np.float32)  # mean over RGB of x / 255


def _fine_alpha_cv2(a: np.ndarray, b: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    # a, b: [h, w] float32, rgb: [H, W, 3] uint8 -> [H, W] float32 0..1. cv2's kernels do the full-res
    # part in ~3 ms at 720p on 2 cores, torch's in ~10.
    height, width = rgb.shape[:2]
    a_up = cv2.resize(np.ascontiguousarray(a), (width, height), interpolation=cv2.INTER_LINEAR)  # [H, W]
    b_up = cv2.resize(np.ascontiguousarray(b), (width, height), interpolation=cv2.INTER_LINEAR)
    gray = cv2.transform(rgb.astype(np.float32), _GRAY)  # [H, W] float32 0..1
    alpha = cv2.multiply(a_up, gray)
    cv2.add(alpha, b_up, dst=alpha)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def _fine_alpha_torch(ab: Tensor, frames: list[np.ndarray], dtype: torch.dtype) -> list[np.ndarray]:
    # GPU path: ab [N, 2, h, w] (A, b of the alpha channel) on the device; the frames go up as uint8
    height, width = frames[0].shape[:2]
    fine = to_tensor(frames, ab.device, dtype).mean(1, keepdim=True)  # [N, 1, H, W]
    up = F.interpolate(ab, (height, width), mode="bilinear", align_corners=False)  # [N, 2, H, W]
    alpha = torch.addcmul(up[:, 1:], up[:, :1], fine).clamp_(0.0, 1.0)
    # back one frame at a time (each [H, W] float32 fits the heap `keep_freed_memory` keeps, where a
    # whole batch, 66 MB at 1080p x 8, was a fresh mapping every time): on an H200, with the heap kept,
    # 2.5 ms a 1080p frame at batch 8 against 2.8 for the batch at once, 12.3 against 15.8 at 4K; float16
    # widened by numpy cost 7.2 (bench/gpu_alpha_copy.py, docs/BENCHMARKS.md "GPU")
    out = alpha[:, 0].float()  # [N, H, W]
    return [out[i].cpu().numpy() for i in range(out.shape[0])]
