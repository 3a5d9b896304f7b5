"""Per-model matte post-processing: one configuration type, one per-stream runner, one option parser.

Every model's `new_session(**opts)` splits the post-processing options off with `split_post_options`,
starting from that model's `post_defaults`, and its session runs a `MattePost` around the network:

    low-res matte --temporal--> --guided upsampling (or bilinear)--> full-res alpha --subject--> alpha

so the pipeline, the segmenter service and the benchmarks all get the same defaults from the one call
`get_model(name, dir).new_session()`; nobody assembles steps by hand. Torch-free, like the rest of
`videobg.matte`, so front ends can validate options (`check_text_prompt`) without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from videobg.errors import InvalidInput
from videobg.matte import guided as gf
from videobg.matte.prompt import Prompt, positional_prior
from videobg.matte.prompt import parse as parse_prompt
from videobg.matte.subject import (
    SUBJECT_MODES,
    Anchor,
    Saliency,
    SaliencyGate,
    SaliencyRead,
    SubjectSelector,
    remapped,
    saliency_reads,
)
from videobg.matte.temporal import DEFAULT_LEVELS, DEFAULT_STILL, TemporalSmoother

PROMPT_MODEL = "pro"  # seed 004: "text_prompt | Used with pro model"

# session options every model accepts on top of its own (threads, internal_size, ...)
POST_OPTIONS = frozenset({"subjects", "temporal", "guided", "text_prompt"})


@dataclass(frozen=True)
class PostConfig:
    # "main": the subject the video is about (pro: the person and what they ride or hold); "person": the
    # main person only; "all": everybody the model finds
    subjects: str = "all"
    temporal: bool = False  # motion-gated smoothing of the low-res matte (per-frame models only)
    guided: bool = False  # guided upsampling of the low-res matte (models that output at low res)
    guided_radius: int = gf.DEFAULT_RADIUS
    guided_eps: float = gf.DEFAULT_EPS
    temporal_still: float = DEFAULT_STILL  # new-frame weight where nothing moved
    temporal_levels: tuple[float, float] = DEFAULT_LEVELS
    anchor: bool = False  # choose the main subject with a saliency model (U²-Net small) where installed
    anchor_every: int = 0  # re-read the saliency every N frames (0: only when choosing the subject)
    gate: bool = False  # main subject = the salient region, every frame (needs the saliency model)
    # where the gate's salient subject is not a person: "auto" (its saliency becomes the matte), "never"
    # (people only: the person matte stays), "always" (the salient object: the saliency is the matte)
    saliency_matte: str = "auto"
    position: str | None = None  # text_prompt: choose the subject at left / right / center
    pick: str | None = None  # text_prompt: choose the largest / smallest subject
    prompt: str = ""  # the text_prompt these came from, for describe()

    def describe(self) -> str:
        steps = [f"text_prompt {self.prompt!r}"] if self.prompt else []
        if self.temporal:
            steps.append("motion-gated temporal smoothing")
        if self.guided:
            steps.append(f"guided upsampling (r={self.guided_radius}, eps={self.guided_eps:g})")
        if self.subjects != "all" and self.gate:
            held = ", plus the salient objects in contact with them" if self.subjects == "main" else ""
            steps.append(
                f"main subject by per-frame saliency gate (U²-Net small{held}; the saliency itself where "
                "the subject is not a person)"
            )
        elif self.subjects != "all":
            anchored = " (first frame anchored by U²-Net small saliency)" if self.anchor else ""
            steps.append(f"main-subject selection and tracking{anchored}")
        return ", ".join(steps) or "none"


def check_text_prompt(model: str, text_prompt: Any) -> Prompt | None:
    """The prompt's choices (videobg/matte/prompt.py), None without one. Seed 004: "text_prompt | Used
    with pro model": any other model with a non-empty prompt is refused, and so is a word the grammar
    does not know; never ignored. The one check the pipeline, the session factory and every service
    reach."""
    if text_prompt is None or text_prompt == "":
        return None
    if not isinstance(text_prompt, str):
        raise InvalidInput(f"text_prompt must be a string, got {type(text_prompt).__name__}")
    if text_prompt.strip() == "":
        return None
    if model != PROMPT_MODEL:
        raise InvalidInput(
            f"text_prompt is used with the {PROMPT_MODEL} model; model '{model}' takes no prompt: send "
            f"model '{PROMPT_MODEL}', or leave text_prompt out"
        )
    return parse_prompt(text_prompt)


def apply_prompt(config: PostConfig, prompt: Prompt) -> PostConfig:
    """pro's defaults (a per-frame saliency gate) changed by what the prompt chose."""
    if prompt.kind == "object":
        return replace(config, subjects="main", gate=True, saliency_matte="always", prompt=prompt.text)
    if prompt.everyone:
        return replace(config, subjects="all", gate=False, prompt=prompt.text)
    if prompt.position:
        # flow-tracked selection, chosen (first frame, or when lost) from saliency x the position's prior
        return replace(
            config, subjects="main", gate=False, anchor=True, position=prompt.position, prompt=prompt.text
        )
    if prompt.size:
        return replace(
            config, subjects="main", gate=False, anchor=False, pick=prompt.size, prompt=prompt.text
        )
    if prompt.kind == "person":
        return replace(config, subjects="person", saliency_matte="never", prompt=prompt.text)
    return replace(config, prompt=prompt.text)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean, got {value!r}")
    return value


def split_post_options(
    model: str, defaults: PostConfig, opts: dict[str, Any]
) -> tuple[PostConfig, dict[str, Any]]:
    """(post configuration, the remaining model options). Checks the prompt and the option values."""
    rest = dict(opts)
    prompt = check_text_prompt(model, rest.pop("text_prompt", None))
    if prompt is not None:
        defaults = apply_prompt(defaults, prompt)
    changes: dict[str, Any] = {}
    if "subjects" in rest:
        subjects = rest.pop("subjects")
        if subjects not in SUBJECT_MODES:
            raise InvalidInput(f"subjects must be one of {', '.join(SUBJECT_MODES)}, got {subjects!r}")
        changes["subjects"] = subjects
    for name in ("temporal", "guided"):
        if name in rest:
            changes[name] = _bool(name, rest.pop(name))
    return replace(defaults, **changes), rest


def positioned(anchor: Anchor, position: str) -> Anchor:
    """The saliency map times the position word's prior: the salient thing THERE seeds the subject, and
    foreground far from it (the crowd elsewhere) seeds the others."""

    def choose(sal: np.ndarray) -> np.ndarray:  # [h, w] float32 0..1
        return sal * positional_prior(position, *sal.shape)

    return Saliency(lambda frames: [remapped(r, choose) for r in saliency_reads(anchor, frames)])


class MattePost:
    """The post-processing state of one stream (one job). Not thread-safe, like the session."""

    def __init__(self, config: PostConfig, anchor: Anchor | None = None):
        self.config = config
        self._scratch = gf.Scratch()
        self.temporal = (
            TemporalSmoother(config.temporal_still, config.temporal_levels) if config.temporal else None
        )
        self.subject: SubjectSelector | SaliencyGate | None = None
        if config.subjects != "all":
            if config.gate:
                if anchor is None:
                    raise ValueError("a saliency gate needs a saliency anchor")
                gate_anchor = positioned(anchor, config.position) if config.position else anchor
                self.subject = SaliencyGate(
                    gate_anchor, saliency_matte=config.saliency_matte, objects=config.subjects == "main"
                )
            else:
                chooser = anchor if config.anchor else None
                if chooser is not None and config.position:
                    chooser = positioned(chooser, config.position)
                self.subject = SubjectSelector(
                    "main", anchor=chooser, anchor_every=config.anchor_every, pick=config.pick
                )

    def reset(self) -> None:
        if self.temporal is not None:
            self.temporal.reset()
        if self.subject is not None:
            self.subject.reset()

    def low_res(self, small_rgb: np.ndarray, p: np.ndarray) -> np.ndarray:
        """small_rgb [h, w, 3] uint8 (the network's input grid), p [h, w] float32 0..1 -> [h, w] float32."""
        return self.temporal(small_rgb, p) if self.temporal is not None else p

    def upsample(self, rgb: np.ndarray, small_rgb: np.ndarray, p: np.ndarray) -> np.ndarray:
        """-> [H, W] float32 0..1 at the size of rgb [H, W, 3] uint8."""
        c = self.config
        if c.guided:
            return gf.guided_upsample(rgb, small_rgb, p, c.guided_radius, c.guided_eps, self._scratch)
        return gf.bilinear_upsample(p, rgb.shape[1], rgb.shape[0])

    def saliency_ahead(self, frames: list[np.ndarray]) -> list[SaliencyRead] | None:
        """The gate's saliency reads of these frames, or None without a gate. Stateless (the network only;
        the gate's smoothing runs in `full_res`), so a session's `prepare` calls it on its own thread."""
        if not isinstance(self.subject, SaliencyGate):
            return None
        return saliency_reads(self.subject.anchor, frames)  # one network call for the batch

    def full_res(self, rgb: np.ndarray, alpha: np.ndarray, sal: SaliencyRead | None = None) -> np.ndarray:
        """rgb [H, W, 3] uint8, alpha [H, W] float32 0..1 -> [H, W] float32 0..1. `sal`: the gate's
        saliency read of this frame from `saliency_ahead`, if it ran."""
        if isinstance(self.subject, SaliencyGate):
            return self.subject(rgb, alpha, sal)
        return self.subject(rgb, alpha) if self.subject is not None else alpha

    def finish_low_res(self, rgb: np.ndarray, small_rgb: np.ndarray, p: np.ndarray) -> np.ndarray:
        """All three steps for a model whose output is a low-res matte on the grid of `small_rgb`."""
        return self.full_res(rgb, self.upsample(rgb, small_rgb, self.low_res(small_rgb, p)))
