"""Settings shared by the CLI and every service (env prefix VIDEOBG_). Built once by a main, passed down."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from videobg.types import Limits


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDEOBG_", extra="ignore")

    # weight files; unset: the dir `make setup` recorded (<user data dir>/videobg/model_dir), else
    # <user data dir>/videobg/models (user data dir: $XDG_DATA_HOME or ~/.local/share), whatever the cwd
    model_dir: Path = Field(default_factory=lambda: default_model_dir())
    default_model: str = "human"  # the model of a job (or CLI run) that names none
    # which U²-Net serves `original`: small (u2netp.onnx, the CPU default) or full (u2net.onnx, 176 MB:
    # J 0.733 vs 0.671 at ~3x the time; `make models WITH_MODELS=original-full`; the GPU image ships it
    # and the gpu overlay sets full). The job record's `weights` says which ran (docs/QUALITY.md)
    original_weights: Literal["small", "full"] = "small"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # 0: auto, one fewer than the usable cores (see resolved_threads)
    max_bytes: int = 100 * 1024 * 1024  # refused above this input size (file_size_too_large)
    max_duration_s: float = 60.0  # refused above this (trimmed) length; also the largest credit reservation
    min_side: int = 64  # refused below this width or height
    max_side: int = 4096  # refused above this width or height (resolution_too_high)
    max_fps: float = 240.0  # refused above this frame rate (invalid_parameter)
    max_frames: int = 0  # refused above this many frames; 0: max_duration_s x max_fps
    queue_frames: int = 8  # bounded queue between overlapped stages (frames in flight per stage)
    batch_frames: int = 0  # frames per inference call; 0: auto (1 on CPU, 8 on a GPU; see resolved_batch)
    refine_workers: int = 0  # refine + composite threads per job; 0: auto (see resolved_refine_workers)

    def model_to_run(self, name: str) -> str:
        """The registry model that a public model name runs as here: `original` on the full U²-Net where
        this deployment chose it (`original_weights`), every other name as it is. Billing and the job's
        `model` keep the public name."""
        if name == "original" and self.original_weights == "full":
            return "original-full"
        return name

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

    def resolved_refine_workers(self) -> int:
        """Threads for the edge refinement and composite of one job (frames stay in order). Auto: 1 up to 7
        usable cores (on 2 cores a second worker measured no faster: the other stages already keep both
        busy), then one per 4 cores, at most 4. On a 16-core GPU node one worker capped `human` 1080p at
        ~41 frames/s (24 ms a frame) while the GPU waited (docs/BENCHMARKS.md, "GPU")."""
        if self.refine_workers < 0:
            raise ValueError(f"refine_workers must be >= 0, got {self.refine_workers}")
        if self.refine_workers > 0:
            return self.refine_workers
        cores = usable_cpus()
        return 1 if cores < 8 else min(4, cores // 4)


def user_data_dir() -> Path:
    """Where a user's videobg data lives (the XDG base directory spec): $XDG_DATA_HOME/videobg."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "videobg"


def model_dir_record() -> Path:
    """The file `make setup` (scripts/setup_models.py --record) writes the model dir it filled into."""
    return user_data_dir() / "model_dir"


def default_model_dir() -> Path:
    """The model dir when VIDEOBG_MODEL_DIR is unset: the one setup recorded, else the user data dir's."""
    record = model_dir_record()
    if record.is_file():
        recorded = record.read_text().strip()
        if recorded:
            return Path(recorded)
    return user_data_dir() / "models"


def model_dir_places(settings: CoreSettings) -> str:
    """The places looked at for the model dir, for an error message: the setting, the record, the default."""
    record = model_dir_record()
    recorded = record.read_text().strip() if record.is_file() else ""
    explicit = "model_dir" in settings.model_fields_set
    return "; ".join(
        [
            f"VIDEOBG_MODEL_DIR={settings.model_dir}" if explicit else "VIDEOBG_MODEL_DIR (not set)",
            f"{record} (`make setup` recorded {recorded})"
            if recorded
            else f"{record} (absent: run `make setup`)",
            f"{user_data_dir() / 'models'} (the default)",
        ]
    )


CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus() -> int:
    """Cores this process may use: its affinity mask (a container's cpuset), capped by its cgroup's CPU
    quota rounded up (a Kubernetes `limits.cpu`: a pod limited to 2 CPUs on a 64-core node sees 64 in
    its mask, and 63 torch threads or 4 refine workers there would only be throttled)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(CGROUP_ROOT)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cgroup_cpu_quota(root: Path) -> float | None:
    """CPUs this process's cgroup may use per period (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` /
    `cpu.cfs_period_us` under `cpu/` or `cpu,cpuacct/`); None without a quota, or where none is readable."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # "max 100000" or "200000 100000"
        return int(quota) / int(period) if quota != "max" and int(period) > 0 else None
    except (OSError, ValueError):
        pass
    for v1 in ("cpu", "cpu,cpuacct"):
        try:
            quota_us = int((root / v1 / "cpu.cfs_quota_us").read_text())
            period_us = int((root / v1 / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None
