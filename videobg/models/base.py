"""Matting model base: load once (checksum-verified, under a lock), one session per job.

A model object owns the torch module (shared, read-only after load); a `MatteSession` owns whatever one
ordered stream of frames needs (RVM's recurrent state), so concurrent jobs never share state.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch import nn

from videobg.errors import InvalidInput, ModelUnavailable
from videobg.matte.session import POST_OPTIONS, MattePost, PostConfig, split_post_options
from videobg.matte.subject import Anchor, Saliency
from videobg.models.onnx_weights import OnnxModel, parse_model
from videobg.models.weights import WeightFile, weights_label

log = logging.getLogger(__name__)


class MattingModel(abc.ABC):
    name: ClassVar[str]  # "light" | "human" | "original"
    weight_spec: ClassVar[WeightFile]  # its weight file (videobg/models/weights.py); the next four from it
    weight_file: ClassVar[str]  # file name inside the model dir
    sha256: ClassVar[str]
    source: ClassVar[str]  # where a user downloads the weight file
    licence: ClassVar[str]
    recurrent: ClassVar[bool]
    # what new_session() applies unless the caller overrides it (subjects=, temporal=, guided=)
    post_defaults: ClassVar[PostConfig] = PostConfig()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("weight_spec")
        if spec is not None:  # a model class names its WeightFile once
            cls.weight_file, cls.sha256, cls.source, cls.licence = (
                spec.file,
                spec.sha256,
                spec.source,
                spec.licence,
            )

    def __init__(self, model_dir: str | Path, device: str = "cpu", half: bool | None = None):
        self.model_dir = Path(model_dir).expanduser().resolve()
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ModelUnavailable(
                f"model '{self.name}': device {device!r} asked for, but torch sees no CUDA GPU"
            )
        # fp16 only where it pays (GPU); CPU kernels for half are slow or missing
        self.half = self.device.type == "cuda" if half is None else half
        self.dtype = torch.float16 if self.half else torch.float32
        self.net: nn.Module | None = None
        self._lock = threading.Lock()
        self._anchor: Anchor | None = None
        self._anchor_weights = ""  # weights_label of the saliency model behind _anchor
        self._anchor_tried = False
        self._anchor_lock = threading.Lock()

    @property
    def weight_path(self) -> Path:
        return self.model_dir / self.weight_file

    @property
    def weights(self) -> str:
        """The label of this model's own weight file (`weights_label`); a session adds the saliency
        model's when it uses one (`MatteSession.weights`)."""
        return weights_label(self.weight_file)

    @property
    def loaded(self) -> bool:
        return self.net is not None

    def load(self) -> None:
        """Verify the weight file and build the torch module; later calls return at once."""
        if self.net is not None:
            return
        with self._lock:
            if self.net is not None:
                return
            proto = self._read_weights()
            net = self.build(proto)
            net.eval().requires_grad_(False)
            # channels-last: oneDNN/cuDNN convs run NHWC natively (1.3-2x faster here), and frames
            # arrive as HWC anyway (see to_tensor)
            net.to(self.device, self.dtype)
            self.net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def _read_weights(self) -> OnnxModel:
        path = self.weight_path
        fix = (
            f"Download it from {self.source} into {self.model_dir} "
            f"(or run `python scripts/setup_models.py --dest {self.model_dir}`)."
        )
        if not path.is_file():
            raise ModelUnavailable(
                f"Model '{self.name}' is unavailable: weight file {self.weight_file} not found in "
                f"{self.model_dir} (looked for {path}). {fix}"
            )
        data = path.read_bytes()  # hashed and parsed from the same bytes
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise ModelUnavailable(
                f"Model '{self.name}' is unavailable: {path} has sha256 {digest}, expected {self.sha256} "
                f"(corrupt or a different file). {fix}"
            )
        try:
            return parse_model(data)
        except ValueError as exc:  # a file with the right hash always parses; keep the message anyway
            raise ModelUnavailable(f"Model '{self.name}': cannot read {path}: {exc}") from exc

    @abc.abstractmethod
    def build(self, proto: OnnxModel) -> nn.Module:
        """Instantiate the torch module and copy the graph's weights onto it."""

    @abc.abstractmethod
    def new_session(self, **opts: Any) -> MatteSession:
        """One session per job; loads the model if needed. Unknown options raise InvalidInput.

        Every model also takes the post-processing options `subjects` ("main" | "all"), `temporal` and
        `guided` (booleans), defaulting to `post_defaults`, and `text_prompt` (must be empty).
        """

    def split_options(self, opts: dict[str, Any], allowed: set[str]) -> tuple[PostConfig, dict[str, Any]]:
        """(post configuration, model options); raises InvalidInput for unknown options or a text prompt."""
        post, rest = split_post_options(self.name, self.post_defaults, opts)
        check_opts(self.name, rest, allowed | POST_OPTIONS)
        return post, rest

    def saliency_anchor(self) -> Anchor | None:
        """U²-Net small's saliency map of a frame, used to choose the main subject; None where its weight
        file is not installed (the choice then falls back to the largest central component)."""
        from videobg.models import get_model  # the registry imports this module

        with self._anchor_lock:
            if not self._anchor_tried:
                try:
                    saliency = get_model("original", self.model_dir, str(self.device))
                except ModelUnavailable as exc:
                    log.info(
                        "model '%s': subject selection without a saliency anchor (%s)", self.name, exc.message
                    )
                else:
                    # stateless: one raw session serves every stream of this model
                    raw = saliency.new_session(subjects="all", temporal=False, guided=False)
                    self._anchor = Saliency(raw.saliency_reads)  # type: ignore[attr-defined]
                    self._anchor_weights = saliency.weights
                self._anchor_tried = True
        return self._anchor


class MatteSession(abc.ABC):
    """Per-job inference state. Not thread-safe: one job is one ordered stream on one worker."""

    def __init__(self, model: MattingModel, threads: int | None = None, post: PostConfig | None = None):
        model.load()
        assert model.net is not None
        self.model = model
        self.net = model.net
        self.device = model.device
        self.dtype = model.dtype
        if threads is not None:
            # torch's intra-op pool is process-wide; only set it when the caller asks for it
            if threads < 1:
                raise InvalidInput(f"threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        post = post or PostConfig()
        wants_anchor = post.subjects != "all" and (post.anchor or post.gate)
        anchor = model.saliency_anchor() if wants_anchor else None
        if wants_anchor and post.gate and anchor is None:
            raise ModelUnavailable(
                f"model '{model.name}' chooses its subject with U²-Net small: install u2netp.onnx in "
                f"{model.model_dir} (scripts/setup_models.py), or pass subjects='all'"
            )
        self.post = MattePost(post, anchor)
        # which weights this session runs, for the job record: the model's own, plus the saliency model's
        # where it chooses the subject ("rvm_mobilenetv3+u2netp"; `human` reads it on the first frame,
        # `pro` every frame)
        self.weights = model.weights + (f"+{model._anchor_weights}" if anchor is not None else "")

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """[H, W, 3] uint8 upright frame -> [H, W] float32 alpha 0..1 at the frame's full resolution."""
        return self.predict_batch([rgb])[0]

    def predict_batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """N consecutive frames of the same stream, in order -> N alphas as `predict` gives them."""
        return self.finish(frames, self.infer(frames, self.prepare(frames)))

    # Inference in three steps, so that the pipeline can run each on a thread of its own, joined by
    # queues in frame order: on two cores one job's inference then spreads over both. A step may read
    # no state that another step changes.

    def prepare(self, frames: list[np.ndarray]) -> Any:
        """Work that needs no earlier frame (checks, resizing, a stateless network or the stateless half
        of a recurrent one). Returns what `infer` takes; None: `infer` does this work itself."""
        return None

    def infer(self, frames: list[np.ndarray], prepared: Any) -> Any:
        """In order: the model's own state (a recurrent network). `prepared` is what `prepare` returned
        for exactly these frames, or None. Returns what `finish` takes. Default: nothing to do."""
        return prepared

    @abc.abstractmethod
    def finish(self, frames: list[np.ndarray], inferred: Any) -> list[np.ndarray]:
        """In order: the post-processing state (temporal and subject steps) -> N alphas [H, W] float32.
        `inferred` is what `infer` returned for exactly these frames (None: do all the work here)."""

    def reset(self) -> None:
        """Forget temporal state (a scene cut, a new clip): the model's and the post-processing's."""
        self.post.reset()


def check_frame(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
        raise InvalidInput(f"expected an [H, W, 3] uint8 RGB frame, got {got}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise InvalidInput(f"empty frame {rgb.shape}")


def check_opts(model: str, opts: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown option(s) for model '{model}': {', '.join(unknown)}; valid: {sorted(allowed)}"
        )


def resize_u8(rgb: np.ndarray, width: int, height: int, area: bool = False) -> np.ndarray:
    """[H, W, 3] uint8 -> [height, width, 3] uint8 on the CPU, before any float conversion (cheap).

    Bilinear by default: the same half-pixel sampling as torch's `interpolate(..., align_corners=False)`
    and MediaPipe's own preprocessing. `area` averages (antialiased) when shrinking, at ~10x the cost.
    """
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrink = width < rgb.shape[1] and height < rgb.shape[0]
    return cv2.resize(
        rgb, (width, height), interpolation=cv2.INTER_AREA if area and shrink else cv2.INTER_LINEAR
    )


def to_tensor(frames: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """N x [h, w, 3] uint8 -> [N, 3, h, w] `dtype` 0..1 on `device` (converted after the upload: 4x less data)."""
    u8 = torch.from_numpy(np.stack(frames) if len(frames) > 1 else frames[0][None])  # [N, h, w, 3] uint8
    x = u8.to(device, non_blocking=True).permute(0, 3, 1, 2)
    return x.to(dtype).mul_(1.0 / 255.0)


def upsample_alpha(small: np.ndarray, width: int, height: int) -> np.ndarray:
    """[h, w] float32 -> [height, width] float32, bilinear, clipped to 0..1."""
    if small.shape != (height, width):
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(small, 0.0, 1.0, out=small)
