"""`pro`: the best matte this CPU machine gives, at a few frames per second.

Robust Video Matting at a 512 px internal size (the `human` model runs it at 320: finer edges, steadier
limbs; docs/QUALITY.md), with the main subject chosen EVERY frame by U²-Net small's saliency (a gate,
temporally smoothed), which holds the subject better than flow tracking when a crowd touches it (DAVIS
breakdance). When the salient subject is not a person (RVM covers under a fifth of it over the last 15
frames: a dog, a product), the temporally smoothed saliency map becomes the matte instead, so such a
subject is kept the way `original` keeps it (DAVIS libby: J 0.105 -> 0.605), then smoothed once more
at full resolution with optical flow and cleared of its faint background haze (libby flicker 14.53 ->
7.56, under `human`'s 9.90; docs/QUALITY.md, fourth pass). The salient things the
person rides, holds or walks (in contact and moving with them, adopted by a running vote) are added with
the saliency's edge (`videobg.matte.subject.HeldObjects`, carried by optical flow for a few frames
where the saliency loses them); `subjects="person"` keeps people only. A person blob is kept whole
unless it is much larger than its salient part (a crowd merged with the subject), which alone is gated,
tightly (docs/QUALITY.md, second pass). The
saliency network runs in `prepare` (a batch ahead, on the pipeline's other thread). Needs both weight
files: rvm_mobilenetv3_fp32.onnx and u2netp.onnx.
"""

from __future__ import annotations

from videobg.errors import ModelUnavailable
from videobg.matte.session import PostConfig
from videobg.models.human import HumanModel


class ProModel(HumanModel):
    name = "pro"
    licence = "GPL-3.0 (Robust Video Matting) + Apache-2.0 (U²-Net small)"
    post_defaults = PostConfig(subjects="main", gate=True)
    default_internal = 512

    def load(self) -> None:
        super().load()
        # the saliency model is part of this one: fail at load, with where to get it, not mid-job
        if self.saliency_anchor() is None:
            raise ModelUnavailable(
                f"Model '{self.name}' is unavailable: it also needs U²-Net small (u2netp.onnx) in "
                f"{self.model_dir}. Run `python scripts/setup_models.py --dest {self.model_dir}`."
            )
