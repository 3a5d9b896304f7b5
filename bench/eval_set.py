"""Build the held-out evaluation set: composite clips with exact truth, disjoint from the tuning clips.

The matting defaults were tuned on the five DAVIS clips in ../shared/media/gt/davis2016/. This script
composes four clips from OTHER shared media, deterministically (fixed seeds, analytic trajectories), into a
DAVIS-layout folder (clip/frames/NNNNN.jpg + clip/masks/NNNNN.png) that `bench/quality.py` scores:

    .venv/bin/python bench/eval_set.py [--dest DIR]          # default: $XDG_CACHE_HOME/videobg/eval-set
    .venv/bin/python bench/quality.py "$(.venv/bin/python bench/eval_set.py --print-dest)"

People: the two first-frame masks of the MatAnyone sample (a woman holding a microphone, a man in a
hoodie; gt/matanyone_test-sample0, 1920x1080 JPEG + exact masks), cut out and moved over a moving
background. Objects: a scooter and a suitcase drawn here (textured shapes with their own exact masks),
since no shared clip has an object cut-out that is not a tuning clip. Truth: the composited subject's
alpha > 0.5, so it is exact by construction (a passer-by composited behind the subject is NOT in it).

| clip | kind | what |
|---|---|---|
| eval-walk | person | the woman sliding and bobbing across the rooftops video (androidx, 30 fps, every 2nd frame) |
| eval-scooter | person+object | the man riding a scooter right to left over a panned street photo; he jumps off the deck (a gap of up to 30 px) for 6 frames |
| eval-suitcase | person+object | the woman carrying a suitcase at her side over a panned atrium photo, while the man, smaller, walks behind her and brushes her (not in the truth) |
| eval-cart | object | the scooter alone, rolling and bouncing across a panned skyline photo |

Limits: the people are stills (no limb motion), cut out with hard masks (1 px feather), so these clips
measure subject choice, objects and stability far better than hair-level edges. A few seconds to build;
media are never committed (the destination is a cache).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE = (854, 480)  # (w, h), as the DAVIS clips
FRAMES = 40
KINDS = {"eval-walk": "person", "eval-scooter": "person+object", "eval-suitcase": "person+object",
         "eval-cart": "object"}  # fmt: skip


def default_media() -> Path:
    return Path(os.environ.get("VIDEOBG_MEDIA_DIR", REPO.parent / "shared" / "media"))


def default_dest() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "videobg" / "eval-set"


@dataclass
class Layer:
    """An RGBA sprite: rgb [h, w, 3] uint8, alpha [h, w] float32 0..1."""

    rgb: np.ndarray
    alpha: np.ndarray

    def scaled(self, height: int) -> Layer:
        s = height / self.rgb.shape[0]
        size = (max(1, round(self.rgb.shape[1] * s)), height)
        rgb = cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA)
        return Layer(rgb, cv2.resize(self.alpha, size, interpolation=cv2.INTER_AREA))

    def flipped(self) -> Layer:
        return Layer(self.rgb[:, ::-1].copy(), self.alpha[:, ::-1].copy())


def person(media: Path, which: int) -> Layer:
    """Person 1 (woman, microphone) or 2 (man, hoodie) of the MatAnyone sample's first frame, cropped to
    the mask's box, its edge feathered over ~1 px."""
    folder = media / "gt" / "matanyone_test-sample0"
    bgr = cv2.imread(str(folder / "frames" / "0000.jpg"), cv2.IMREAD_COLOR)
    mask = cv2.imread(str(folder / "masks" / f"0000_person{which}.png"), cv2.IMREAD_GRAYSCALE)
    if bgr is None or mask is None:
        raise SystemExit(f"{folder}: cannot read frame 0000 or its person{which} mask")
    x, y, w, h = cv2.boundingRect((mask > 127).astype(np.uint8))
    alpha = cv2.GaussianBlur((mask[y : y + h, x : x + w] > 127).astype(np.float32), (3, 3), 0)
    return Layer(cv2.cvtColor(bgr[y : y + h, x : x + w], cv2.COLOR_BGR2RGB), alpha)


def _texture(
    rng: np.random.Generator, shape: tuple[int, int], base: tuple[int, int, int], amp: int
) -> np.ndarray:
    """[h, w, 3] uint8: a base colour with smooth, seeded noise (so the object is not a flat patch)."""
    noise = rng.normal(0.0, 1.0, (shape[0] // 8 + 2, shape[1] // 8 + 2)).astype(np.float32)
    noise = cv2.resize(noise, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 0.35, shape).astype(np.float32)
    out = np.asarray(base, np.float32)[None, None, :] + amp * (noise + grain)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def scooter(width: int, seed: int = 13) -> Layer:
    """A kick scooter, `width` px long: a textured orange deck, two dark wheels with grey hubs, a steel
    stem and handlebar at the front (left)."""
    rng = np.random.default_rng(seed)
    w, h = width, round(width * 0.9)
    rgb = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    r = round(w * 0.09)  # wheel radius
    deck_top, deck_bot = h - 2 * r - round(w * 0.06), h - 2 * r + round(w * 0.01)
    parts: list[tuple[Callable[[np.ndarray, int], None], np.ndarray]] = []

    def stem(m: np.ndarray, v: int) -> None:
        cv2.line(m, (r + 4, h - r), (round(w * 0.16), round(h * 0.05)), v, max(3, w // 40))
        cv2.line(
            m, (round(w * 0.05), round(h * 0.05)), (round(w * 0.28), round(h * 0.05)), v, max(3, w // 45)
        )

    def deck(m: np.ndarray, v: int) -> None:
        cv2.rectangle(m, (round(w * 0.12), deck_top), (w - r - 2, deck_bot), v, -1)
        cv2.line(m, (w - 2 * r, deck_bot), (w - r, h - r), v, max(3, w // 45))

    def wheels(m: np.ndarray, v: int) -> None:
        for cx in (r + 2, w - r - 2):
            cv2.circle(m, (cx, h - r - 1), r, v, -1)

    parts = [
        (stem, _texture(rng, (h, w), (150, 155, 165), 18)),
        (deck, _texture(rng, (h, w), (225, 110, 30), 22)),
        (wheels, _texture(rng, (h, w), (35, 35, 40), 10)),
    ]
    for draw, tex in parts:
        m = np.zeros((h, w), np.uint8)
        draw(m, 255)
        rgb[m > 0] = tex[m > 0]
        mask |= m
    for cx in (r + 2, w - r - 2):  # hubs
        cv2.circle(rgb, (cx, h - r - 1), max(2, r // 3), (170, 170, 175), -1)
    return Layer(rgb, cv2.GaussianBlur((mask > 0).astype(np.float32), (3, 3), 0))


def suitcase(height: int, seed: int = 7) -> Layer:
    """A hard-shell suitcase, `height` px tall with its handle: teal ribbed shell, dark handle."""
    rng = np.random.default_rng(seed)
    w, h = round(height * 0.62), height
    top = round(h * 0.16)
    rgb = _texture(rng, (h, w), (20, 120, 130), 16)
    for x in range(w // 6, w, w // 6):  # ribs
        rgb[top:, max(0, x - 2) : x + 2] = (rgb[top:, max(0, x - 2) : x + 2] * 0.7).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (0, top), (w - 1, h - 1), 255, -1)
    handle = np.zeros((h, w), np.uint8)
    cv2.rectangle(handle, (round(w * 0.3), 0), (round(w * 0.7), top), 255, max(4, w // 14))
    rgb[handle > 0] = (30, 30, 32)
    mask |= handle
    return Layer(rgb, cv2.GaussianBlur((mask > 0).astype(np.float32), (3, 3), 0))


def paste(canvas: np.ndarray, alpha_acc: np.ndarray | None, layer: Layer, x: int, y: int) -> None:
    """Composite `layer` with its top-left at (x, y) onto canvas [H, W, 3] float32 in place, clipped to the
    frame; where `alpha_acc` is given, accumulate the layer's coverage into it (the truth), and where it is
    None the layer only hides what is under it (a passer-by hides the truth behind them)."""
    H, W = canvas.shape[:2]
    h, w = layer.alpha.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    a = layer.alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    rgb = layer.rgb[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1.0 - a) + rgb * a


def over(truth: np.ndarray, layer: Layer, x: int, y: int, keep: bool) -> None:
    """The truth [H, W] float32 after `layer` is composited at (x, y): a subject layer adds its coverage,
    a distractor's coverage removes what it hides."""
    H, W = truth.shape
    h, w = layer.alpha.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x0 >= x1 or y0 >= y1:
        return
    a = layer.alpha[y0 - y : y1 - y, x0 - x : x1 - x]
    region = truth[y0:y1, x0:x1]
    truth[y0:y1, x0:x1] = region * (1.0 - a) + (a if keep else 0.0)


def video_background(path: Path, n: int, step: int) -> list[np.ndarray]:
    """n frames (every `step`-th) of a video, RGB at SIZE."""
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                out.append(cv2.resize(frame.to_ndarray(format="rgb24"), SIZE, interpolation=cv2.INTER_AREA))
            if len(out) == n:
                break
    if len(out) < n:
        raise SystemExit(f"{path}: only {len(out)} frames at step {step}, need {n}")
    return out


def pan_background(path: Path, n: int, crop_frac: float, direction: int = 1) -> list[np.ndarray]:
    """n frames of a still panned sideways (a window of `crop_frac` of its height, moving across 40 % of
    the width), RGB at SIZE: a moving camera with parallax-free motion."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    H, W = img.shape[:2]
    ch = round(H * crop_frac)
    cw = min(W, round(ch * SIZE[0] / SIZE[1]))
    travel = min(W - cw, round(0.4 * W))
    out = []
    for t in range(n):
        f = t / max(1, n - 1)
        x = round((f if direction > 0 else 1.0 - f) * travel)
        y = (H - ch) // 2
        out.append(cv2.resize(img[y : y + ch, x : x + cw], SIZE, interpolation=cv2.INTER_AREA))
    return out


Frame = tuple[np.ndarray, np.ndarray]  # ([H, W, 3] uint8 RGB, [H, W] uint8 mask 0/255)


def _finish(canvas: np.ndarray, truth: np.ndarray) -> Frame:
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8), np.where(truth > 0.5, 255, 0).astype(np.uint8)


def below_frame(height: int, bob: int, cycles: float) -> int:
    """Top row of a half-body cut-out `height` px tall bobbing by +-`bob` px (`cycles` periods so far),
    its cut edge always at or below the frame's bottom. With the cut in view (bobbing around the bottom,
    as before 2026-12-04 13:40) the truth ended in a straight line through the body ~10 px above the
    frame's edge, which no matting model can know: every model continued the body to the edge, and
    that line alone was pro's F miss on eval-walk (docs/QUALITY.md, third pass)."""
    return SIZE[1] - height + bob + round(bob * np.sin(2 * np.pi * cycles))


def clip_walk(media: Path, n: int = FRAMES) -> Iterator[Frame]:
    woman = person(media, 1).scaled(400)
    bgs = video_background(media / "backgrounds" / "androidx_london_roofs_360p.mp4", n, 2)
    for t, bg in enumerate(bgs):
        f = t / max(1, n - 1)
        x = round(60 + 420 * f)
        y = below_frame(400, 10, 3 * f)  # walking bob
        canvas, truth = bg.astype(np.float32), np.zeros(SIZE[::-1], np.float32)
        paste(canvas, None, woman, x, y)
        over(truth, woman, x, y, True)
        yield _finish(canvas, truth)


def clip_scooter(media: Path, n: int = FRAMES) -> Iterator[Frame]:
    man = person(media, 2).flipped().scaled(250)
    ride = scooter(300)
    bgs = pan_background(media / "backgrounds" / "moviepy_vacation_2017.jpg", n, 0.6, direction=-1)
    sh, sw = ride.alpha.shape
    for t, bg in enumerate(bgs):
        f = t / max(1, n - 1)
        sx = round(SIZE[0] - sw - 20 - 480 * f)
        sy = SIZE[1] - sh - 8 + round(4 * np.sin(2 * np.pi * 5 * f))  # bumps in the road
        jump = 18 <= t < 24  # he hops off the deck: a gap of up to 30 px
        lift = round(30 * np.sin(np.pi * (t - 17) / 7)) if jump else 0
        deck_top = sy + sh - round(sw * 0.18) - round(sw * 0.06)
        mx, my = sx + round(sw * 0.5) - man.rgb.shape[1] // 2, deck_top - man.rgb.shape[0] + 6 - lift
        canvas, truth = bg.astype(np.float32), np.zeros(SIZE[::-1], np.float32)
        for layer, x, y in ((ride, sx, sy), (man, mx, my)):
            paste(canvas, None, layer, x, y)
            over(truth, layer, x, y, True)
        yield _finish(canvas, truth)


def clip_suitcase(media: Path, n: int = FRAMES) -> Iterator[Frame]:
    woman = person(media, 1).scaled(380)
    walker = person(media, 2).scaled(300)
    case = suitcase(170)
    bgs = pan_background(media / "backgrounds" / "bgmatting_background_0001.png", n, 0.7)
    for t, bg in enumerate(bgs):
        f = t / max(1, n - 1)
        wx = round(120 + 260 * f)
        wy = below_frame(380, 6, 4 * f)
        cx = wx + woman.rgb.shape[1] - 60  # held at her side, its handle at her hand's height
        cy = SIZE[1] - case.rgb.shape[0] - 4 + round(6 * np.sin(2 * np.pi * 4 * f + 0.6))
        px = round(SIZE[0] - 40 - 700 * f)  # the passer-by walks the other way, behind her
        py = SIZE[1] - 300 + 30
        canvas, truth = bg.astype(np.float32), np.zeros(SIZE[::-1], np.float32)
        for layer, x, y, keep in ((walker, px, py, False), (case, cx, cy, True), (woman, wx, wy, True)):
            paste(canvas, None, layer, x, y)
            over(truth, layer, x, y, keep)
        yield _finish(canvas, truth)


def clip_cart(media: Path, n: int = FRAMES) -> Iterator[Frame]:
    ride = scooter(360, seed=29)
    bgs = pan_background(media / "backgrounds" / "androidx_london.jpg", n, 0.8)
    sh, sw = ride.alpha.shape
    for t, bg in enumerate(bgs):
        f = t / max(1, n - 1)
        x = round(30 + 440 * f)
        y = SIZE[1] - sh - 30 - round(40 * abs(np.sin(2 * np.pi * 2 * f)))  # bouncing
        canvas, truth = bg.astype(np.float32), np.zeros(SIZE[::-1], np.float32)
        paste(canvas, None, ride, x, y)
        over(truth, ride, x, y, True)
        yield _finish(canvas, truth)


CLIPS: dict[str, Callable[..., Iterator[Frame]]] = {
    "eval-walk": clip_walk,
    "eval-scooter": clip_scooter,
    "eval-suitcase": clip_suitcase,
    "eval-cart": clip_cart,
}


def frames_of(name: str, media: Path | None = None, n: int = FRAMES) -> list[Frame]:
    """The first `n` frames of one clip in memory (the tests use this: no files written)."""
    return list(itertools.islice(CLIPS[name](media or default_media(), FRAMES), n))


def build(dest: Path, media: Path, names: list[str] | None = None) -> list[Path]:
    """Write the clips in DAVIS layout under dest; returns the clip folders."""
    out = []
    for name in names or list(CLIPS):
        folder = dest / name
        (folder / "frames").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        for i, (rgb, mask) in enumerate(CLIPS[name](media)):
            cv2.imwrite(str(folder / "frames" / f"{i:05d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])  # fmt: skip
            cv2.imwrite(str(folder / "masks" / f"{i:05d}.png"), mask)
        out.append(folder)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dest", type=Path, default=default_dest())
    ap.add_argument("--media", type=Path, default=default_media())
    ap.add_argument("--clips", default=",".join(CLIPS), help=f"comma list of {', '.join(CLIPS)}")
    ap.add_argument("--print-dest", action="store_true", help="print the destination and build nothing")
    args = ap.parse_args(argv)
    if args.print_dest:
        print(args.dest)
        return 0
    names = [c for c in args.clips.split(",") if c]
    unknown = [c for c in names if c not in CLIPS]
    if unknown:
        ap.error(f"unknown clip(s): {', '.join(unknown)}")
    for folder in build(args.dest, args.media, names):
        print(folder, file=sys.stderr)
    print(args.dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
