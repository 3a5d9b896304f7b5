"""Settings shared by the CLI and every service (env prefix VIDEOBG_). Built once by a main, passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from videobg.types import Limits


class CoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDEOBG_", extra="ignore")

    model_dir: Path = Path("models")  # weight files (scripts/setup_models.py fills it)
    default_model: str = "human"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    torch_threads: int = 0  # 0: PyTorch's default
    max_bytes: int = 100 * 1024 * 1024
    max_duration_s: float = 60.0
    min_side: int = 64
    max_side: int = 4096
    queue_frames: int = 8  # bounded queue between overlapped stages (frames in flight per stage)

    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_bytes,
            max_duration_s=self.max_duration_s,
            min_side=self.min_side,
            max_side=self.max_side,
        )

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
