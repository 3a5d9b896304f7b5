"""Score each matting model on clips with per-frame binary GT masks (DAVIS layout): J, F, flicker, dtSSD, fps.

DIR is one clip folder (frames/*.jpg + masks/*.png, matched by file stem) or a folder of such folders.
Every installed model runs one session per clip over the frames in order; the table is printed and written
to --out with the command, date and machine. Metric definitions: videobg/quality.py. A script, not a test.

    .venv/bin/python bench/quality.py ../shared/media/gt/davis2016 [--models human,light] [--max-frames 40]

--variants picks session option sets from VARIANTS: "default" is `new_session()` exactly as the pipeline
and the segmenter call it (each model's post-processing defaults), "raw" is the bare frame-by-frame network
output (`subjects="all", temporal=False, guided=False`); each variant is its own pass over the clip.
--post names full-resolution variants from POSTS (below) to score side by side with the session's output
("none"); each gets a fresh instance per clip and sees the same alphas, so the model runs once per pass.
--costs adds a table of the post-processing steps' ms/frame at 1280x720.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from videobg.quality import (  # noqa: E402
    ALPHA_THRESHOLD,
    DTSSD_FORMULA,
    FLICKER_FORMULA,
    ClipScore,
    ClipScorer,
    boundary_f,
    mask_from_u8,
)

Predict = Callable[[np.ndarray], np.ndarray]  # [H, W, 3] uint8 RGB -> [H, W] float32 alpha 0..1
PostFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (rgb, alpha) -> alpha, same shapes
PostFactory = Callable[[], PostFn | None]  # called once per clip (a variant may keep temporal state)

TIGHT_PX = 2  # a second boundary F at 2 px: the DAVIS 8 px tolerance hides edge alignment at 480p


def _subject_post() -> PostFn:
    from videobg.matte.subject import SubjectSelector

    return SubjectSelector("main")


def _steady_post() -> PostFn:
    """`pro`'s treatment of its saliency matte (videobg/matte/subject.py, fourth pass) on any model's output:
    flow-compensated smoothing at full resolution (new-frame weight 0.5 where still), then the haze under
    0.3 cleared."""
    from videobg.matte.subject import HAZE_FLOOR, MATTE_STILL, clear_haze
    from videobg.matte.temporal import DEFAULT_LEVELS, TemporalSmoother

    smoother = TemporalSmoother(MATTE_STILL, DEFAULT_LEVELS)
    return lambda rgb, alpha: clear_haze(smoother(rgb, alpha), HAZE_FLOOR)


# Full-resolution post-processing scored next to the session's output ("none"). The per-model defaults
# (temporal smoothing and guided upsampling need the low-res matte) run inside the session: see VARIANTS.
POSTS: dict[str, PostFactory] = {
    "none": lambda: None,
    "subject": _subject_post,  # main-subject tracking without a saliency anchor, on any model's output
    "steady": _steady_post,  # full-resolution flow smoothing + haze floor, as pro's saliency matte has
}

# Session option sets: "default" is what `get_model(name).new_session()` applies for that model.
RAW = {"subjects": "all", "temporal": False, "guided": False}
VARIANTS: dict[str, dict[str, object]] = {"default": {}, "raw": RAW}

FRAME_EXTS = (".jpg", ".jpeg", ".png")


@dataclass
class Row:
    clip: str
    model: str
    post: str
    score: ClipScore
    model_s: float  # model time over the timed frames
    timed_frames: int
    post_ms: float  # post-processing time per frame, 0 for "none"
    f_tight: float = float("nan")  # boundary F within TIGHT_PX px

    @property
    def fps(self) -> float:
        return self.timed_frames / self.model_s if self.model_s > 0 else float("nan")


def is_clip(path: Path) -> bool:
    return (path / "frames").is_dir() and (path / "masks").is_dir()


def find_clips(root: Path) -> list[Path]:
    """`root` itself if it is a clip folder, else its clip sub-folders sorted by name."""
    if is_clip(root):
        return [root]
    clips = sorted(p for p in root.iterdir() if p.is_dir() and is_clip(p)) if root.is_dir() else []
    if not clips:
        raise SystemExit(f"{root}: neither a clip folder (frames/ + masks/) nor a folder of clip folders")
    return clips


def frame_mask_pairs(clip: Path, max_frames: int | None = None) -> list[tuple[Path, Path]]:
    """(frame, mask) paths matched by stem, in name order; frames without a mask are left out."""
    masks = {p.stem: p for p in (clip / "masks").iterdir() if p.suffix.lower() == ".png"}
    frames = sorted(p for p in (clip / "frames").iterdir() if p.suffix.lower() in FRAME_EXTS)
    pairs = [(f, masks[f.stem]) for f in frames if f.stem in masks]
    if not pairs:
        raise SystemExit(f"{clip}: no frame has a mask with the same name")
    return pairs[:max_frames] if max_frames else pairs


def read_pair(frame: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    """-> ([H, W, 3] uint8 RGB, [H, W] uint8 mask 0/255)."""
    bgr = cv2.imread(str(frame), cv2.IMREAD_COLOR)
    gt = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    if bgr is None or gt is None:
        raise SystemExit(f"cannot read {frame if bgr is None else mask}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), gt


def iter_clip(clip: Path, max_frames: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for frame, mask in frame_mask_pairs(clip, max_frames):
        yield read_pair(frame, mask)


def score_clip(
    clip: Path,
    predict: Predict,
    *,
    model: str = "model",
    posts: dict[str, PostFactory] | None = None,
    max_frames: int | None = None,
) -> list[Row]:
    """Run `predict` over one clip in order and score it raw and through each post variant.

    `predict` is any frame -> alpha callable (a model session's `predict`, or a test's oracle). The first
    frame is left out of frames/s: it carries one-off allocations and would skew short clips.
    """
    posts = posts if posts is not None else {"none": POSTS["none"]}
    fns = {name: make() for name, make in posts.items()}
    scorers = {name: ClipScorer() for name in posts}
    tight: dict[str, list[float]] = {name: [] for name in posts}
    post_s = dict.fromkeys(posts, 0.0)
    model_s, timed, n = 0.0, 0, 0
    for rgb, gt in iter_clip(clip, max_frames):
        t0 = time.perf_counter()
        alpha = predict(rgb)
        dt = time.perf_counter() - t0
        if n > 0:
            model_s, timed = model_s + dt, timed + 1
        n += 1
        for name, fn in fns.items():
            out = alpha
            if fn is not None:
                t0 = time.perf_counter()
                out = fn(rgb, alpha)
                post_s[name] += time.perf_counter() - t0
            scorers[name].add(out, gt)
            tight[name].append(boundary_f(out > ALPHA_THRESHOLD, mask_from_u8(gt), TIGHT_PX))
    if n == 1:  # nothing left to time after the warm-up frame
        model_s, timed = dt, 1
    return [
        Row(
            clip.name,
            model,
            name,
            scorers[name].result(),
            model_s,
            timed,
            1e3 * post_s[name] / n,
            float(np.mean(tight[name])),
        )
        for name in posts
    ]


def default_model_dir() -> Path:
    env = os.environ.get("VIDEOBG_MODEL_DIR")
    if env:
        return Path(env)
    local = REPO / "models"
    if local.is_dir() and any(local.glob("*.onnx")):
        return local
    return REPO.parent / "shared" / "models"


def fmt(x: float, digits: int) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def table(rows: list[Row]) -> list[str]:
    show_post = any(r.post != "none" for r in rows)
    head = (
        ["clip", "model"]
        + (["post"] if show_post else [])
        + ["frames", "J", "F", f"F {TIGHT_PX}px", "flicker", "dtSSD", "frames/s"]
    )
    head += ["post ms/frame"] if show_post else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r.score
        cells = [r.clip, r.model] + ([r.post] if show_post else [])
        cells += [
            str(s.frames),
            fmt(s.j, 3),
            fmt(s.f, 3),
            fmt(r.f_tight, 3),
            fmt(s.flicker, 2),
            fmt(s.dtssd, 2),
        ]
        cells += [fmt(r.fps, 1)]
        cells += [fmt(r.post_ms, 2)] if show_post else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def mean_rows(rows: list[Row]) -> list[Row]:
    """One 'mean' row per (model, post): unweighted mean over clips, frames/s over all timed frames."""
    out = []
    for key in dict.fromkeys((r.model, r.post) for r in rows):
        rs = [r for r in rows if (r.model, r.post) == key]
        if len(rs) < 2:
            continue

        def avg(xs: list[float]) -> float:
            xs = [x for x in xs if not math.isnan(x)]
            return float(np.mean(xs)) if xs else float("nan")

        s = ClipScore(
            sum(r.score.frames for r in rs),
            avg([r.score.j for r in rs]),
            avg([r.score.f for r in rs]),
            avg([r.score.flicker for r in rs]),
            avg([r.score.dtssd for r in rs]),
        )
        timed = sum(r.timed_frames for r in rs)
        out.append(
            Row(
                "**mean**",
                key[0],
                key[1],
                s,
                sum(r.model_s for r in rs),
                timed,
                avg([r.post_ms for r in rs]),
                avg([r.f_tight for r in rs]),
            )
        )
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        threads = f", torch {torch.__version__} with {torch.get_num_threads()} threads"
    except ImportError:
        threads = ""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}{threads}"


def _median_ms(fn: Callable[[int], object], n: int) -> float:
    fn(0)  # warm-up: allocations, OpenCV's first-call setup
    times = []
    for i in range(1, n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def post_costs(clip: Path, frames: int = 24, size: tuple[int, int] = (1280, 720)) -> list[str]:
    """ms/frame of each post-processing step at `size`, on a clip's frames with its GT masks (softened) as
    the matte, in stream order (the temporal steps carry state). Model inference is not included."""
    from videobg.matte import guided
    from videobg.matte.subject import SaliencyGate, SubjectSelector
    from videobg.matte.temporal import TemporalSmoother

    w, h = size
    rgbs, alphas = [], []
    for rgb, gt in iter_clip(clip, frames):
        rgbs.append(cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR))
        soft = cv2.GaussianBlur(gt.astype(np.float32) / 255.0, (9, 9), 0)
        alphas.append(cv2.resize(soft, size, interpolation=cv2.INTER_LINEAR))
    n = len(rgbs)
    lines = [f"| step (input {w}x{h}, {clip.name}, median of {n - 1} frames) | ms/frame |", "|---|---|"]
    for side, interp in ((256, cv2.INTER_LINEAR), (320, cv2.INTER_AREA)):
        small = [cv2.resize(f, (side, side), interpolation=interp) for f in rgbs]
        low = [cv2.resize(a, (side, side), interpolation=cv2.INTER_AREA) for a in alphas]
        smoother = TemporalSmoother()
        rows = [
            (
                f"bilinear upsampling {side}x{side} -> {w}x{h} (the raw path)",
                lambda i, low=low: guided.bilinear_upsample(low[i], w, h),
            ),
            (
                f"guided upsampling {side}x{side} -> {w}x{h}",
                lambda i, low=low, small=small: guided.guided_upsample(rgbs[i], small[i], low[i]),
            ),
            (
                f"temporal smoothing at {side}x{side} (flow-compensated, motion-gated)",
                lambda i, low=low, small=small, sm=smoother: sm(small[i], low[i]),
            ),
        ]
        for name, fn in rows:
            lines.append(f"| {name} | {_median_ms(fn, n):.2f} |")
    selector = SubjectSelector("main")
    lines.append(
        f"| main-subject selection and tracking (`human`) | {_median_ms(lambda i: selector(rgbs[i], alphas[i]), n):.2f} |"
    )
    sal = [cv2.resize(a, (320, 320), interpolation=cv2.INTER_AREA) for a in alphas]
    # the GT is the saliency, and its lower 40 % is left out of the person matte: that part is a salient
    # non-person thing touching the person, so the held-object step runs in full every frame
    upper = [a * (np.arange(h)[:, None] < 0.6 * h) for a in alphas]
    for objects, name in ((False, 'subjects="person"'), (True, "with held objects, the default")):
        gate = SaliencyGate(lambda rgb: None, objects=objects)
        ms = _median_ms(lambda i, g=gate: g(rgbs[i], upper[i].astype(np.float32), sal[i]), n)
        lines.append(f"| saliency gate (`pro`, {name}), without the U²-Net pass itself | {ms:.2f} |")
    return lines


def report(rows: list[Row], argv: list[str], notes: list[str], extra: list[str] | None = None) -> str:
    cmd = " ".join(shlex.quote(a) for a in ["python", "bench/quality.py", *argv])
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Matte quality on clips with per-frame GT masks",
        "",
        f"- command: `{cmd}`",
        f"- date: {now}",
        f"- machine: {machine()}",
        "- GT: binary masks (> 127); prediction for J and F: alpha > 0.5. Definitions: `videobg/quality.py`.",
        "- J: mean per-frame IoU (both empty = 1). F: DAVIS boundary F-measure, seg2bmap boundaries matched"
        " within ceil(0.008 x diagonal) px (8 px at 854x480), mean per frame.",
        f"- {FLICKER_FORMULA} (alpha 0..1; lower is steadier).",
        f"- {DTSSD_FORMULA} (g binary 0/1; lower is better).",
        f"- F {TIGHT_PX}px: the same boundary F with a {TIGHT_PX} px tolerance (edge placement at full resolution).",
        "- frames/s: model time only (session.predict, post-processing included), first frame of each clip"
        " left out as warm-up; mean rows: total timed frames / total model time.",
        "- `model` rows are `new_session()` with that model's defaults (what the pipeline and the segmenter"
        " run); `model (raw)` rows are the bare network output, frame by frame (`subjects='all',"
        " temporal=False, guided=False`).",
        "",
        *table(rows + mean_rows(rows)),
    ]
    if extra:
        lines += ["", *extra]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _option(text: str) -> tuple[str, object]:
    """'internal_size=512' -> ('internal_size', 512); booleans, ints and floats are parsed, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set wants OPTION=VALUE, got {text!r}")
    value: object = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    return key, value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from videobg.errors import ModelUnavailable
    from videobg.models import MODELS, get_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path, help="a clip folder (frames/ + masks/) or a folder of them")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    ap.add_argument("--post", default="none", help=f"comma list of post variants: {', '.join(POSTS)}")
    ap.add_argument(
        "--variants", default="default,raw", help=f"comma list of session option sets: {', '.join(VARIANTS)}"
    )
    ap.add_argument("--costs", action="store_true", help="add the post-processing ms/frame at 1280x720")
    ap.add_argument("--out", type=Path, default=Path("docs/QUALITY.md"))
    ap.add_argument("--max-frames", type=int, default=None, help="score the first N frames of each clip")
    ap.add_argument(
        "--model-dir", type=Path, default=None, help="default: $VIDEOBG_MODEL_DIR, ./models, ../shared/models"
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="extra session option for every model and variant, e.g. --set internal_size=512 (repeatable)",
    )
    args = ap.parse_args(argv)
    try:
        extra_opts = dict(_option(s) for s in args.set)
    except ValueError as exc:
        ap.error(str(exc))

    names = [m for m in args.models.split(",") if m]
    posts_named = [p for p in args.post.split(",") if p]
    variants = [v for v in args.variants.split(",") if v]
    unknown = [m for m in names if m not in MODELS] + [p for p in posts_named if p not in POSTS]
    unknown += [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown model, post or session variant: {', '.join(unknown)}")
    posts = {p: POSTS[p] for p in posts_named}
    model_dir = args.model_dir or default_model_dir()
    clips = find_clips(args.dir)

    notes, models = [], {}
    for name in names:
        try:
            models[name] = get_model(name, model_dir, args.device)
        except ModelUnavailable as exc:
            notes.append(f"model '{name}' skipped: {exc}")
            print(f"skipping {name}: {exc}", file=sys.stderr)
    if not models:
        raise SystemExit("no model could be loaded; see the messages above")

    rows: list[Row] = []
    for clip in clips:
        for name, model in models.items():
            for variant in variants:
                label = name if variant == "default" else f"{name} ({variant})"
                if extra_opts:
                    label += " " + ",".join(f"{k}={v}" for k, v in extra_opts.items())
                session = model.new_session(**{**VARIANTS[variant], **extra_opts})
                rows += score_clip(
                    clip, session.predict, model=label, posts=posts, max_frames=args.max_frames
                )
                print("\n".join(table(rows[-len(posts) :])[2:]), file=sys.stderr, flush=True)

    extra = ["Per-model defaults (`new_session()`):", ""]
    extra += [f"- `{name}`: {model.post_defaults.describe()}" for name, model in models.items()]
    if args.costs:
        cost_clip = next((c for c in clips if c.name == "parkour"), clips[0])
        extra += [
            "",
            "Post-processing cost per frame (this machine, single stream):",
            "",
            *post_costs(cost_clip),
        ]
    text = report(rows, argv, notes, extra)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
