"""Settings shared by the CLI and every service (env prefix VIDEOBG_). Built once by a main, passed down."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from videobg.types import Limits


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDEOBG_", extra="ignore")

    model_dir: Path = Path("models")  # weight files (scripts/setup_models.py fills it)
    default_model: str = "human"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # 0: auto, one fewer than the usable cores (see resolved_threads)
    max_bytes: int = 100 * 1024 * 1024
    max_duration_s: float = 60.0
    min_side: int = 64
    max_side: int = 4096
    max_fps: float = 240.0  # refused above this frame rate (invalid_parameter)
    max_frames: int = 0  # refused above this many frames; 0: max_duration_s x max_fps
    queue_frames: int = 8  # bounded queue between overlapped stages (frames in flight per stage)
    batch_frames: int = 0  # frames per inference call; 0: auto (1 on CPU, 8 on a GPU; see resolved_batch)

    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_bytes,
            max_duration_s=self.max_duration_s,
            min_side=self.min_side,
            max_side=self.max_side,
            max_fps=self.max_fps,
            max_frames=self.max_frames,
        )

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_threads(self) -> int:
        """PyTorch intra-op threads. Auto leaves one core to the stages that run beside inference (decode,
        refine, encode): on the 2-core benchmark machine 1 thread gives 39.6 frames/s for `light` end to
        end against 33.7 with 2 (docs/BENCHMARKS.md)."""
        if self.torch_threads > 0:
            return self.torch_threads
        return max(1, usable_cpus() - 1)

    def resolved_batch(self, device: str) -> int:
        """Frames per inference call. A GPU wants batches (the per-frame part of every model runs on N frames
        at once; RVM's recurrent decoder still steps frame by frame); on the CPU a batch buys nothing end to
        end (`human`, 720p, 2 cores: 11.2 / 11.1 / 11.0 frames/s at batch 1 / 4 / 8) and adds latency."""
        if self.batch_frames < 0:
            raise ValueError(f"batch_frames must be >= 0, got {self.batch_frames}")
        if self.batch_frames > 0:
            return self.batch_frames
        return 1 if device == "cpu" else 8


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's cpuset), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
