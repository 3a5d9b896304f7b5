"""Matting models (PyTorch runtime) and their registry.

Usage: `model = get_model("human", "models/")` (loaded once per name, dir and device), then per job
`session = model.new_session()` (holds the recurrent state) and per frame `alpha = session.predict(rgb)`
([H, W, 3] uint8 -> [H, W] float32 0..1). `new_session()` applies the model's post-processing defaults
(`post_defaults`: temporal smoothing, guided upsampling, main-subject selection; see
videobg/matte/session.py) and takes `subjects=`, `temporal=`, `guided=` and `text_prompt=` (which must be
empty: no prompt-capable model is installed; `check_text_prompt` is the one check, torch-free in
videobg.matte.session for front ends that validate a request before any model loads).
"""

from __future__ import annotations

import threading
from pathlib import Path

from videobg.errors import InvalidInput
from videobg.matte.session import check_text_prompt
from videobg.models.base import MatteSession, MattingModel
from videobg.models.human import HumanModel
from videobg.models.light import LightModel
from videobg.models.original import OriginalFullModel, OriginalModel
from videobg.models.pro import ProModel

MODELS: dict[str, type[MattingModel]] = {
    LightModel.name: LightModel,
    HumanModel.name: HumanModel,
    OriginalModel.name: OriginalModel,
    ProModel.name: ProModel,
    OriginalFullModel.name: OriginalFullModel,  # optional weights (see weights.OPTIONAL)
}

_cache: dict[tuple[str, Path, str], MattingModel] = {}
_cache_lock = threading.Lock()


def get_model(name: str, model_dir: str | Path, device: str = "cpu") -> MattingModel:
    """The loaded model `name` from `model_dir`; raises InvalidInput (unknown name) or ModelUnavailable."""
    cls = MODELS.get(name)
    if cls is None:
        raise InvalidInput(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}")
    key = (name, Path(model_dir).expanduser().resolve(), str(device))
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            model = _cache[key] = cls(model_dir, device)
    model.load()  # outside the registry lock: loading one model must not block the others
    return model


__all__ = ["MODELS", "MatteSession", "MattingModel", "check_text_prompt", "get_model"]
