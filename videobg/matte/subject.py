"""Main-subject selection: keep the person (or object) a video is about, drop bystanders.

Person matting models matte everybody: RVM keeps the whole crowd behind a breakdancer, and the crowd's
blob usually touches the dancer's, so connected components alone cannot tell them apart. The selector
therefore tracks two labels, "subject" and "others", on a small copy of the matte (long side
`work_size`, default 320 px; foreground = alpha > 0.5):

- first frame (or when the subject is lost): where an `anchor` is given (a saliency map: U²-Net small's),
  the salient part seeds the subject and foreground far from it seeds "others", and a marker watershed on
  the small frame splits the foreground along image edges; a blob not much larger than its salient part is
  kept whole (saliency misses limbs and held things). Without an anchor: the connected component with the
  best area x centrality score.
- later frames: both labels are carried to this frame by dense optical flow (OpenCV DIS, ~1 ms at
  320x180); where the warped previous frame does not match this one (disocclusion: the crowd a dancer
  uncovers has zero flow and would inherit the dancer's label) no seed is placed. The seeds' eroded cores
  drive the same watershed. Flow rather than a fixed search radius keeps fast subjects (parkour, twirls)
  without letting the subject creep into static bystanders. Separate pieces within `attach_px` of the
  subject that no bystander claims are kept (a board, a held object, a body split by an occluder).

The full-resolution alpha is then multiplied by a weight that is 1 wherever a pixel is nearer the subject
than any bystander (the subject's own soft edge stays whole) and 0 on the bystanders' side, feathered over
~2 work px. `mode="all"` is the identity.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from videobg.errors import InvalidInput
from videobg.matte import guided as gf
from videobg.matte.temporal import DEFAULT_LEVELS, TemporalSmoother, flow_to_previous, new_flow

SUBJECT_MODES = ("main", "person", "all")  # "person": people only, no held or ridden object
# the saliency matte's second, full-resolution smoothing (new-frame weight where still) and haze floor
# (`SaliencyGate`, docs/QUALITY.md fourth pass)
MATTE_STILL, HAZE_FLOOR = 0.5, 0.3
Anchor = Callable[[np.ndarray], np.ndarray]  # [H, W, 3] uint8 -> [h, w] float32 0..1 saliency (any h, w)


@dataclass(frozen=True)
class SaliencyRead:
    """One frame's saliency as the gate reads it."""

    map: np.ndarray  # [h, w] float32 0..1
    # [h, w, 3] uint8: the frame shrunk onto the map's grid (INTER_AREA), as the network was given it; None
    # where the reader did not keep it. The gate needs that same image: reusing it saves a second 1080p
    # area resize (6 ms a frame, on the in-order thread that caps `pro` on a GPU)
    grid: np.ndarray | None = None


class Saliency:
    """A saliency model as an `Anchor` (one frame) that can also map N frames in one network call
    (`batch`, or `read` with the frames on the maps' grid): what `pro`'s gate reads ahead for a GPU
    batch, one call instead of N."""

    def __init__(self, read: Callable[[list[np.ndarray]], list[SaliencyRead]]):
        self.read = read  # N x [H, W, 3] uint8 -> N reads

    def batch(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """N x [H, W, 3] uint8 -> N x [h, w] float32 0..1."""
        return [r.map for r in self.read(frames)]

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.read([rgb])[0].map


def saliency_reads(anchor: Anchor, frames: list[np.ndarray]) -> list[SaliencyRead]:
    """The anchor's reads of N frames: in one call, with their grids, where it is a `Saliency`; else its
    maps frame by frame, without grids."""
    if isinstance(anchor, Saliency):
        return anchor.read(frames)
    return [SaliencyRead(anchor(f)) for f in frames]


def remapped(read: SaliencyRead, change: Callable[[np.ndarray], np.ndarray]) -> SaliencyRead:
    """The same read with its map changed (a prior applied), its grid kept."""
    return replace(read, map=change(read.map))


_FG = 0.5  # alpha above this is foreground


def _disc(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


class SubjectSelector:
    """Stateful per stream: call once per frame, in order. `reset()` at a cut."""

    def __init__(
        self,
        mode: str = "main",
        *,
        work_size: int = 320,
        anchor: Anchor | None = None,
        lost_fraction: float = 0.25,
        match_level: int = 24,
        anchor_every: int = 0,
        attach_px: float = 0.06,
        anchor_margin: float = 0.05,
        merge_ratio: float = 1.6,
        reanchor_gap: int = 25,
        pick: str | None = None,
    ):
        if mode not in SUBJECT_MODES:
            raise InvalidInput(f"subjects must be one of {', '.join(SUBJECT_MODES)}, got {mode!r}")
        if not 64 <= work_size <= 1024:
            raise InvalidInput(f"subject work_size must be 64..1024 px, got {work_size}")
        self.mode = mode
        self.work_size = work_size
        self.anchor = anchor
        self.lost_fraction = lost_fraction  # subject shrank below this x its recent size: choose again
        self.anchor_every = anchor_every  # re-read the anchor every N frames (0: only when choosing)
        self.attach_px = attach_px  # a separate piece this close (fraction of the long side) is attached
        self.anchor_margin = anchor_margin  # band around the salient part left to the watershed
        self.merge_ratio = merge_ratio  # a blob this much larger than its salient part holds bystanders
        self.match_level = match_level  # grey levels: a warped pixel further off than this is not trusted
        self.reanchor_gap = reanchor_gap  # frames between two anchor reads when choosing again (cost)
        if pick not in (None, "largest", "smallest"):
            raise InvalidInput(f"pick must be largest or smallest, got {pick!r}")
        self.pick = pick  # choose by size (text_prompt "the largest person") instead of area x centrality
        self._dis = new_flow()
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self._gray: np.ndarray | None = None  # [h, w] uint8 previous small frame
        self._subject: np.ndarray | None = None  # [h, w] uint8 0/1 previous subject mask
        self._others: np.ndarray | None = None  # [h, w] uint8 0/1 previous bystander mask
        self._areas: list[int] = []
        self._n = 0  # frames seen
        self._anchored_at = -(10**9)  # frame of the last anchor read
        self._weight: np.ndarray | float = 1.0  # the last frame's subject weight

    # -- per frame ---------------------------------------------------------------------------------

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """rgb [H, W, 3] uint8, alpha [H, W] float32 0..1 -> [H, W] float32 0..1 (alpha itself when
        nothing is removed, else a new array)."""
        if self.mode == "all":
            return alpha
        size = self.small_size(*alpha.shape)
        small_alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)  # [h, w] float32
        weight = self.weight(rgb, small_alpha)
        self._weight = weight
        return apply_weight(alpha, weight, small_alpha)

    def weight_small(self) -> np.ndarray | float:
        """The last frame's subject weight [h, w] float32 0..1 (1.0 before any frame)."""
        return self._weight

    def small_size(self, height: int, width: int) -> tuple[int, int]:
        scale = min(1.0, self.work_size / max(height, width))
        return max(1, round(width * scale)), max(1, round(height * scale))

    def weight(self, rgb: np.ndarray, small_alpha: np.ndarray) -> np.ndarray:
        """rgb [H, W, 3] uint8, small_alpha [h, w] float32 at `small_size` -> the feathered subject mask
        [h, w] float32 0..1."""
        size = small_alpha.shape[::-1]
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)  # [h, w, 3] uint8
        fg = (small_alpha > _FG).astype(np.uint8)  # [h, w] 0/1
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        subject = None
        sal = None
        if self.anchor is not None and self.anchor_every > 0 and self._n % self.anchor_every == 0:
            sal = cv2.resize(self.anchor(rgb), size, interpolation=cv2.INTER_AREA)  # [h, w] 0..1
        self._n += 1
        if self._subject is not None and self._gray is not None and self._gray.shape == gray.shape:
            subject = self._track(gray, small, fg, sal)
        if subject is None:
            subject = self._choose(rgb, small, fg)
        self._gray = gray
        self._subject = subject
        self._others = fg & (1 - subject)
        self._areas = ([*self._areas, int(subject.sum())])[-8:]
        return self._feather(subject, self._others)

    def _feather(self, subject: np.ndarray, others: np.ndarray) -> np.ndarray:
        """The weight [h, w] float32 0..1: 1 wherever a pixel is nearer the subject than any bystander, so
        the subject's soft edge (hair, motion blur) stays whole, falling to 0 across the line halfway
        between them over ~2 work px. Faint haze that no foreground region claims is the model's own
        call and is left alone; with no bystander in the frame the matte passes unchanged."""
        if not others.any():
            return np.ones(subject.shape, np.float32)
        d_subject = cv2.distanceTransform(1 - subject, cv2.DIST_L2, 3)  # px to the nearest subject pixel
        d_others = cv2.distanceTransform(1 - others, cv2.DIST_L2, 3)
        return np.clip((d_others - d_subject) * 0.5 + 0.5, 0.0, 1.0)

    # -- first frame: choose --------------------------------------------------------------------------

    def _choose(self, rgb: np.ndarray, small: np.ndarray, fg: np.ndarray) -> np.ndarray:
        if not fg.any():
            return fg
        # a saliency pass costs ~0.2-0.5 s on 2 cores: not on every frame of an empty or confusing stretch
        if self.anchor is not None and self._n - self._anchored_at >= self.reanchor_gap:
            self._anchored_at = self._n
            sal = cv2.resize(self.anchor(rgb), fg.shape[::-1], interpolation=cv2.INTER_AREA)  # [h, w] 0..1
            picked = self._split(small, fg, *self._anchor_seeds(sal), self._attach(fg.shape))
            if picked is not None:
                # saliency misses limbs and held things; only a blob much larger than the salient part
                # (a crowd merged with the subject) is worth cutting
                n, labels = cv2.connectedComponents(fg, connectivity=8)
                hit = np.unique(labels[picked > 0])
                blob = np.isin(labels, hit[hit > 0]).astype(np.uint8)
                return blob if blob.sum() <= self.merge_ratio * picked.sum() else picked
        if self.pick is not None:
            return self._by_size(fg, self.pick, self._attach(fg.shape))
        return self._largest_central(fg, self._attach(fg.shape))

    @staticmethod
    def _by_size(fg: np.ndarray, pick: str, attach: int) -> np.ndarray:
        """The largest or smallest foreground piece (pieces under 0.5 % of the frame are specks, not
        people), with what is within reach of it."""
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        area = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
        big_enough = np.flatnonzero(area >= 0.005 * fg.size)
        candidates = big_enough if big_enough.size else np.arange(area.size)
        best = candidates[np.argmax(area[candidates]) if pick == "largest" else np.argmin(area[candidates])]
        chosen = (labels == 1 + int(best)).astype(np.uint8)
        close = cv2.distanceTransform(1 - chosen, cv2.DIST_L2, 3) <= attach
        near = np.unique(labels[close & (fg > 0)])
        return np.isin(labels, near[near > 0]).astype(np.uint8)

    def _anchor_seeds(self, sal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(subject seed, others seed) from a saliency map. Saliency often misses limbs and held things
        (legs in motion, a board): only what is far from the salient part seeds "others"; the band in
        between is left to the watershed, which follows the image edges."""
        hi = (sal > 0.5).astype(np.uint8)
        near = cv2.dilate(hi, _disc(max(1, round(self.anchor_margin * max(sal.shape)))))
        lo = ((sal < 0.2) & (near == 0)).astype(np.uint8)
        return hi, lo

    @staticmethod
    def _largest_central(fg: np.ndarray, attach: int) -> np.ndarray:
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(fg, connectivity=8)
        h, w = fg.shape
        centre = np.array([w / 2.0, h / 2.0])
        half_diag = 0.5 * float(np.hypot(w, h))
        area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
        dist = np.linalg.norm(centroids[1:] - centre, axis=1) / half_diag  # 0 centre .. 1 corner
        score = area * np.clip(1.0 - dist, 0.05, 1.0)
        best = (labels == 1 + int(np.argmax(score))).astype(np.uint8)
        # and what is within reach of it: a held object, a limb cut off at this resolution
        close = cv2.distanceTransform(1 - best, cv2.DIST_L2, 3) <= attach
        near = np.unique(labels[close & (fg > 0)])
        return np.isin(labels, near[near > 0]).astype(np.uint8)

    # -- later frames: track ------------------------------------------------------------------------

    def _maps(self, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = flow.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (xs, ys)
        return self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]

    def _track(
        self, gray: np.ndarray, small: np.ndarray, fg: np.ndarray, sal: np.ndarray | None
    ) -> np.ndarray | None:
        assert self._gray is not None and self._subject is not None and self._others is not None
        flow = flow_to_previous(self._dis, gray, self._gray)  # [h, w, 2]
        mx, my = self._maps(flow)
        labels = (self._subject + 2 * self._others).astype(np.uint8)  # 0 none, 1 subject, 2 others
        warped = cv2.remap(labels, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
        subj_seed = (warped == 1).astype(np.uint8)
        other_seed = (warped == 2).astype(np.uint8)
        # where the flow is wrong (disocclusion: the crowd a dancer uncovers has zero flow and would inherit
        # the dancer's label) the previous frame, warped, does not match this one: no seed there
        seen = cv2.remap(self._gray, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ok = (cv2.absdiff(seen, gray) < self.match_level).astype(np.uint8)
        if (subj_seed & ok & fg).any():  # motion blur can fail the match everywhere: then trust the flow
            subj_seed &= ok
        other_seed &= ok
        if sal is not None:  # the anchor overrides the carried labels where it is sure
            hi, lo = self._anchor_seeds(sal)
            subj_seed = (subj_seed & (1 - lo)) | hi
            other_seed = (other_seed & (1 - hi)) | lo
        subject = self._split(small, fg, subj_seed, other_seed, self._attach(fg.shape))
        if subject is None:
            return None
        recent = float(np.median(self._areas)) if self._areas else 0.0
        if subject.sum() < self.lost_fraction * recent:
            return None
        return subject

    def _attach(self, shape: tuple[int, ...]) -> int:
        return max(1, round(self.attach_px * max(shape)))

    @staticmethod
    def _split(
        small: np.ndarray, fg: np.ndarray, subj_seed: np.ndarray, other_seed: np.ndarray, attach: int
    ) -> np.ndarray | None:
        """Split the foreground between subject and others: watershed from the two eroded seeds, then keep
        the subject pieces that hold a seed or lie within `attach` px of one (a board, a held object)."""
        k = _disc(1)
        core = cv2.erode(subj_seed & fg, k)
        if not core.any():
            core = subj_seed & fg
            if not core.any():
                return None
        others = (cv2.erode(other_seed & fg, k) & (core == 0)).astype(np.uint8)
        if others.any():
            markers = np.zeros(fg.shape, np.int32)
            markers[others > 0] = 2
            markers[core > 0] = 1
            cv2.watershed(small, markers)
            split = fg & (markers == 1).astype(np.uint8)
        else:  # no rival: the whole foreground is open to the subject
            split = fg
        # a piece reached across the background is not ours, unless it is close: attached objects
        n, labels = cv2.connectedComponents(split | core, connectivity=8)
        seeded = np.unique(labels[core > 0])
        seeded = seeded[seeded > 0]
        if seeded.size == 0:
            return None
        kept = np.isin(labels, seeded).astype(np.uint8)
        close = cv2.distanceTransform(1 - kept, cv2.DIST_L2, 3) <= attach
        near = np.unique(labels[close & (split > 0)])
        near = near[near > 0]
        return np.isin(labels, near).astype(np.uint8) & fg


def _union(a: np.ndarray, b: np.ndarray, small: np.ndarray) -> np.ndarray:
    """Two alphas [H, W] float32 0..1 of parts of one subject -> a + b - ab, in a new array. `small`
    [h, w]: b's low-res support; b is ~0 outside its bounding box (grown by 2 px), where the union is
    just the larger of the two, so the product runs on that box only (~0.5 ms at 1280x720)."""
    out = np.maximum(a, b)
    h, w = small.shape
    x, y, bw, bh = cv2.boundingRect((small > 0).astype(np.uint8))
    if bw == 0 or bh == 0:
        return out
    sx, sy = a.shape[1] / w, a.shape[0] / h
    x0, y0 = max(0, int((x - 2) * sx)), max(0, int((y - 2) * sy))
    x1, y1 = min(a.shape[1], int((x + bw + 2) * sx) + 1), min(a.shape[0], int((y + bh + 2) * sy) + 1)
    pa, pb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = pa + pb - pa * pb
    return out


def clear_haze(alpha: np.ndarray, floor: float) -> np.ndarray:
    """[H, W] float32 0..1 -> the same array, changed in place: 0 up to `floor`, a steeper ramp from there
    to 0.5, unchanged from 0.5 up (min(a, max(0, k (a - floor))), k = 0.5 / (0.5 - floor)). A saliency map's
    faint haze on the background (a tree trunk at 0.2-0.4 beside a dog) shimmers from frame to frame
    and shows as a ghost of the background in the composite; what is over 0.5, and so J and F, is
    unchanged."""
    if floor <= 0.0:
        return alpha
    ramp = alpha - np.float32(floor)  # [H, W] float32, may be negative
    ramp *= np.float32(0.5 / (0.5 - floor))
    np.maximum(ramp, 0.0, out=ramp)
    return np.minimum(alpha, ramp, out=alpha)


def apply_weight(alpha: np.ndarray, weight: np.ndarray, small_alpha: np.ndarray) -> np.ndarray:
    """alpha [H, W] float32 times the low-res weight [h, w] upsampled; work only inside the weight's
    bounding box (zeros outside) and not at all when the weight removes nothing."""
    if not ((small_alpha > 1e-3) & (weight < 0.999)).any():
        return alpha
    height, width = alpha.shape
    h, w = weight.shape
    out = np.zeros_like(alpha)
    x, y, bw, bh = cv2.boundingRect((weight > 0).astype(np.uint8))
    if bw == 0 or bh == 0:
        return out
    x0, y0, x1, y1 = max(0, x - 1), max(0, y - 1), min(w, x + bw + 1), min(h, y + bh + 1)  # low res
    sx, sy = width / w, height / h
    fx0, fy0 = int(round(x0 * sx)), int(round(y0 * sy))
    fx1, fy1 = min(width, int(round(x1 * sx))), min(height, int(round(y1 * sy)))
    up = cv2.resize(weight[y0:y1, x0:x1], (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
    cv2.multiply(alpha[fy0:fy1, fx0:fx1], up, dst=out[fy0:fy1, fx0:fx1])
    return out


class SaliencyGate:
    """Main subject by saliency, every frame: keep the matte only where (and a little around where) a
    salient-object model sees the subject. Costs a saliency pass per frame (U²-Net small: ~180 ms on 2
    cores), so it is `pro`'s choice; the saliency map is smoothed over time (motion-gated, see
    `videobg.matte.temporal`) so the gate's edge does not flicker where the saliency does.

    When the salient subject is not a person (a dog, a product: the person matte covers under
    `person_cover` of the salient region and under `person_area` of the frame, as running medians over
    the last `window` frames, so one odd frame does not flip it), the smoothed saliency map itself is the
    matte, guided-upsampled to full resolution: `pro` then keeps a dog the way `original` does instead
    of dropping it (DAVIS libby: J 0.105 -> 0.605; the other four clips unchanged, docs/QUALITY.md).

    That saliency matte is smoothed once more at full resolution (`matte_smoother`: flow-compensated, new
    frame weight `matte_still` 0.5 where nothing moved; the low-res smoothing before the guided upsampling
    leaves the wobble of a stretched 320x320 map) and its haze under `haze` (0.3) is cleared
    (`clear_haze`): libby flicker 14.53 -> 7.56 (`human` 9.90), J / F 0.607 / 0.697 -> 0.611 / 0.718
    (docs/QUALITY.md, fourth pass).

    A person blob not much larger than its gated part is kept whole (saliency misses legs and boards);
    the gate (1 work px around the salient region) only trims a blob much larger than that, i.e. a
    crowd merged with the subject (`_gate_weight`). The switch to the saliency matte has hysteresis
    (`_update_mode`).

    With `objects` (subjects="main", pro's default) the salient things the kept person rides, holds or
    walks are added with the saliency's own edge (`HeldObjects`), and the person part is narrowed to one
    main person by the flow-tracked `SubjectSelector` (a salient passer-by is dropped); subjects="person"
    keeps the salient people only, as before.
    """

    def __init__(
        self,
        anchor: Anchor,
        *,
        threshold: float = 0.5,
        margin: float = 0.003,
        person_cover: float = 0.2,
        person_area: float = 0.03,
        leave_cover: float = 0.4,
        whole_ratio: float = 1.6,
        near_px: float = 0.06,
        near_area: float = 0.002,
        window: int = 15,
        saliency_matte: str = "auto",
        objects: bool = True,
        matte_still: float = MATTE_STILL,
        haze: float = HAZE_FLOOR,
    ):
        if saliency_matte not in ("auto", "never", "always"):
            raise InvalidInput(f"saliency_matte must be auto, never or always, got {saliency_matte!r}")
        self.saliency_matte = saliency_matte  # text_prompt: people only ("never"), the object ("always")
        self.anchor = anchor
        self.threshold = threshold
        # kept around the salient region, fraction of the long side (0.003: 1 work px, the least). Tight,
        # since it only bites where a person blob is much larger than its salient part (`whole_ratio`:
        # the crowd touching a breakdancer; breakdance J 0.596 -> 0.646 from 0.009, docs/QUALITY.md)
        self.margin = margin
        self.person_cover = person_cover
        self.smoother = TemporalSmoother(0.15, (3.0, 20.0))
        # the saliency where the gate trims a crowd off the subject (its edge there is the saliency's):
        # smoothed with a wider motion gate, since the crowd's own motion kept the gate above open and
        # that edge flickered (breakdance flicker 15.56 -> 13.87, J 0.668 -> 0.665; levels as measured
        # for the whole gate in the second pass, where they cost eval-scooter's held object J)
        self.trim_smoother = TemporalSmoother(0.15, (6.0, 40.0))
        # the saliency matte (no person is the subject), once more at full resolution, where the flow
        # follows the object's own edges; and its faint haze cleared (libby flicker 14.53 -> 7.56, J
        # 0.607 -> 0.611; eval-cart 14.52 -> 12.29, J 0.375 -> 0.382). A still weight of 0.3 flickers
        # less (7.05, 11.11) but lags where the saliency latches on (eval-cart's first 8 frames J 0.306
        # -> 0.259, 0.283 at 0.5); 0.2 costs libby J (0.606)
        self.matte_smoother = TemporalSmoother(matte_still, DEFAULT_LEVELS)
        self.haze = haze
        self._covers: deque[float] = deque(maxlen=window)  # the recent frames' person cover
        # a salient person this large (fraction of the frame) is a subject, however much background the
        # saliency also lights up (a rider in front of a parked car: eval-scooter)
        self.person_area = person_area
        self._areas: deque[float] = deque(maxlen=window)
        self.leave_cover = leave_cover
        self.whole_ratio = whole_ratio
        self.near_px, self.near_area = near_px, near_area
        self._object_mode = False
        self._gated: np.ndarray | None = None  # [h, w] float32 this frame's blobs the gate trims
        self._scratch = gf.Scratch()
        # what the person rides, holds or walks (salient, not a person, in contact): subjects="main";
        # subjects="person" (and the prompt "the person") keeps people only, as before
        self.objects = HeldObjects() if objects else None
        self.selector = SubjectSelector("main") if objects else None

    def reset(self) -> None:
        self.smoother.reset()
        self.trim_smoother.reset()
        self.matte_smoother.reset()
        self._covers.clear()
        self._areas.clear()
        self._object_mode = False
        if self.objects is not None:
            self.objects.reset()
        if self.selector is not None:
            self.selector.reset()

    @property
    def salient_not_person(self) -> bool:
        """True while the recent frames' salient subject is mostly outside the person matte (or a prompt
        decided it: always for "the object", never for "the person")."""
        if self.saliency_matte != "auto":
            return self.saliency_matte == "always"
        return self._object_mode

    def _update_mode(self) -> None:
        """Hysteresis on the switch to the saliency matte: it is entered when the person matte covers
        under `person_cover` of the salient region (and under `person_area` of the frame), and left only
        when it covers `leave_cover` or more. RVM mattes bits of a dog or a scooter, up to a quarter of
        it at times; with one threshold the matte flapped between the object and those bits (eval-cart
        frames 18-23, the last frame of libby). People sit far above it (median cover >= 0.26 on every
        person clip, >= 0.9 on most)."""
        if not self._covers:
            return
        cover = float(np.median(self._covers))
        area = float(np.median(self._areas))
        if self._object_mode:
            self._object_mode = cover < self.leave_cover and area < self.person_area
        else:
            self._object_mode = cover < self.person_cover and area < self.person_area

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray, read: SaliencyRead | None = None) -> np.ndarray:
        """rgb [H, W, 3] uint8, alpha [H, W] float32 0..1 -> [H, W] float32 0..1. `read`: this frame's
        saliency when it was computed ahead (`prepare`, on another thread), else it is read here."""
        if read is None:
            read = saliency_reads(self.anchor, [rgb])[0]
        sal = read.map  # [h, w] float32 0..1, any size (U²-Net: 320x320, stretched)
        h, w = sal.shape
        small = read.grid  # [h, w, 3] uint8: the frame on the map's grid
        if small is None or small.shape[:2] != (h, w):
            small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        raw_sal = sal
        sal = self.smoother(small, sal)
        height, width = alpha.shape
        size = (
            max(1, round(width * 320 / max(height, width))),
            max(1, round(height * 320 / max(height, width))),
        )
        sal_work = cv2.resize(sal, size, interpolation=cv2.INTER_LINEAR)  # [h, w] float32 work grid
        hi = (sal_work > self.threshold).astype(np.uint8)
        small_alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        salient = int(np.count_nonzero(hi))
        if salient:  # a frame with nothing salient says nothing about what the subject is
            covered = np.count_nonzero((small_alpha > 0.5) & (hi > 0))
            self._covers.append(covered / salient)
            self._areas.append(covered / hi.size)
            self._update_mode()
        if self.salient_not_person:
            matte = gf.guided_upsample(rgb, small, sal, scratch=self._scratch)  # [H, W] float32 0..1
            return clear_haze(self.matte_smoother(rgb, matte), self.haze)
        self.matte_smoother.reset()  # from scratch when the saliency matte comes back
        weight = self._gate_weight(hi, small_alpha)
        person = apply_weight(alpha, weight, small_alpha)
        sal_full = None  # the saliency guided up to full resolution, once per frame when needed
        if self._gated is None:
            self.trim_smoother.reset()
        else:
            # where the gate trims a crowd off the subject, the subject's edge there is the saliency's
            # own, guided by the frame, not a ramp around it (breakdance J 0.646 -> 0.668, F 0.622 ->
            # 0.638; no other clip here has a trimmed blob), from the steadier `trim_smoother`, which
            # runs (~10 ms at 320x320: its own flow) only while the gate trims, from scratch after a gap
            edge = gf.guided_upsample(
                rgb, small, self.trim_smoother(small, raw_sal), scratch=self._scratch
            )  # [H, W] float32 0..1
            g = cv2.resize(self._gated, (width, height), interpolation=cv2.INTER_LINEAR)
            person = person * (1.0 - g + g * edge)
        if self.objects is None:
            return person
        # one main person: a salient passer-by is dropped by the flow-tracked selector (`human`'s), which
        # also gives the held objects the person they must touch (eval-suitcase J 0.739 -> 0.805)
        kept = small_alpha * weight
        if self.selector is not None:
            person = self.selector(rgb, person)
            chosen = self.selector.weight_small()
            if isinstance(chosen, np.ndarray) and chosen.shape != kept.shape:  # a frame under 320 px
                chosen = cv2.resize(chosen, size, interpolation=cv2.INTER_LINEAR)
            kept = kept * chosen
        work_rgb = cv2.resize(small, size, interpolation=cv2.INTER_AREA)  # [h, w, 3] uint8
        gray = cv2.cvtColor(work_rgb, cv2.COLOR_RGB2GRAY)
        held = self.objects(gray, hi, small_alpha, kept, sal_work)
        ghost = self.objects.ghost
        if held is None and ghost is None:
            return person
        # the object's own soft edge is the saliency's, guided by the frame; the person keeps RVM's. Their
        # union is a + b - ab (either covers the pixel): where one is 0 it is the other, and where both
        # soft edges meet at a seam (each under 0.5) it closes instead of leaving a line of background.
        out = person
        if held is not None:
            if sal_full is None:
                sal_full = gf.guided_upsample(rgb, small, sal, scratch=self._scratch)  # [H, W] 0..1
            out = _union(out, apply_weight(sal_full, held, np.ones_like(held)), held)
        if ghost is not None:  # an object the saliency lost this frame, carried from the last by the flow
            out = _union(out, gf.guided_upsample(rgb, work_rgb, ghost, scratch=self._scratch), ghost)
        return out

    def _gate_weight(self, hi: np.ndarray, small_alpha: np.ndarray) -> np.ndarray:
        """hi [h, w] uint8 0/1 salient, small_alpha [h, w] float32 the person matte -> the gate [h, w]
        float32 0..1: 1 up to `margin` outside the salient region, a ramp to 0 at twice that. A person
        blob (alpha > 0.5, connected) not much larger than its gated part (`whole_ratio`) is kept whole:
        saliency misses legs in spray and what a rider stands on, and the gate is there for the crowd a
        blob much larger than its salient part holds (breakdance). The ratio and the reach of `near_px`
        are the main-subject selector's (`merge_ratio` 1.6, `attach_px` 0.06): J on kite-surf 0.632 ->
        0.672 (legs and board in the spray), breakdance unchanged up to a ratio of 3 (docs/QUALITY.md)."""
        r = max(1.0, self.margin * max(hi.shape))
        dist = cv2.distanceTransform(1 - hi, cv2.DIST_L2, 3)
        weight = np.clip((2.0 * r - dist) * (1.0 / r), 0.0, 1.0)  # 1 up to r px out, ramp to 0 at 2r
        self._gated = None
        if self.whole_ratio <= 1.0:  # off
            return weight
        fg = (small_alpha > 0.5).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        if n <= 1:
            return weight
        inside = np.bincount(labels[weight > 0.5], minlength=n)  # gated part of each blob
        whole = (inside > 0) & (stats[:, cv2.CC_STAT_AREA] <= self.whole_ratio * inside)
        whole[0] = False
        trimmed = (inside > 0) & ~whole
        trimmed[0] = False
        if trimmed.any():  # [h, w] float32: where the gate cuts a blob, a little beyond its salient part
            self._gated = cv2.dilate(trimmed[labels].astype(np.uint8), _disc(2)).astype(np.float32)
        if not whole[1:].any():
            return weight
        keep = whole[labels].astype(np.uint8)
        if self.near_px > 0:
            # the small pieces RVM leaves around a kept blob (spray, the board's edge) are the subject's
            close = cv2.distanceTransform(1 - keep, cv2.DIST_L2, 3) <= self.near_px * max(hi.shape)
            near = np.zeros(n, bool)
            near[np.unique(labels[close & (fg > 0)])] = True
            near &= stats[:, cv2.CC_STAT_AREA] <= self.near_area * fg.size
            near[0] = False
            keep = (whole | near)[labels].astype(np.uint8)
        keep = cv2.dilate(keep, _disc(max(1, round(r))))
        return np.maximum(weight, keep.astype(np.float32))


class HeldObjects:
    """What the main person rides, holds or walks: the salient regions that are not a person (RVM does
    not matte them) and touch the person the gate keeps, adopted by a running vote and carried through
    time by overlap, so that a board in the air for a few frames stays and something that brushes the
    subject once is not adopted. Stateful per stream, on the gate's work grid (long side 320 px).

    Per frame: candidates = connected components of (salient & not any person, people dilated by
    `person_px`) of at least `min_area` of the frame and at most `max_ratio` x the person (larger: the
    background behind them). A candidate's contact is 1 when it lies within `touch` of the kept person
    AND moves with them (its median optical flow within `with_person` x the person-background flow
    difference of the person's, where those two differ by over `move_px`: a parked car that the rider
    passes does not count, nor a region of the background the person uncovers, whose flow is near zero,
    i.e. halfway between them), else 0. Its vote mixes
    that into the highest vote of the previous frame's candidates it overlaps (dilated by `carry` for
    motion): vote = `keep` x previous + (1 - `keep`) x contact; a candidate with no previous one starts
    at (1 - `keep`) x contact (a newcomer must stay in contact: over `adopt` after 3 frames at keep 0.8).
    The stream's first frame adopts nothing (no flow to check the motion by); up to frame `start_frames`
    the vote is the contact itself (what is held from the start is adopted at once). Adopted while the
    vote is over `adopt`, kept while over `release` (hysteresis: from 1, a board that leaves contact
    stays ~6 frames). The previous frame's candidates are carried to this one by the flow before the
    overlap is taken. An adopted object that the saliency loses altogether (no candidate continues it:
    U²-Net small misses a scooter mid-jump) is carried as a ghost, its last alpha moved by the flow, for
    as long as its decaying vote allows (`_ghosts`; eval-scooter J 0.793 -> 0.804, eval-suitcase 0.857
    -> 0.868, at the cost of 0.016 of F on eval-suitcase, where the carried alpha is the faded part).

    The adopted objects' weight also reaches back over the band around the people that the candidates
    leave out (`person_px`), so the object's alpha meets the person's instead of leaving a line of
    background between RVM's soft lower edge and the saliency's (a rider on a deck; docs/QUALITY.md,
    third pass).
    """

    def __init__(
        self,
        *,
        keep: float = 0.8,
        adopt: float = 0.45,
        release: float = 0.25,
        touch: float = 0.02,
        carry: float = 0.02,
        max_ratio: float = 1.5,
        move_px: float = 1.5,
        person_px: float = 0.01,
        min_area: float = 0.002,
        start_frames: int = 3,
        ghosts: bool = True,
        with_person: float = 0.35,
    ):
        self.keep, self.adopt, self.release = keep, adopt, release
        # moves with the person: median flow this near the person's, as a fraction of how far the
        # person's and the background's are apart (0.5: merely nearer the person's than the background's,
        # which took a patch of background uncovered at the rider's edge, flow ~0, on eval-scooter)
        self.with_person = with_person
        self.max_ratio = max_ratio  # a candidate larger than this x the person is background
        self.move_px = move_px  # person and background flows further apart than this: motion can tell
        self._dis = new_flow()
        self.carry = carry  # overlap with the previous frame's candidates dilated this much carries a vote
        self.touch, self.person_px, self.min_area = touch, person_px, min_area
        self.start_frames = start_frames
        self.ghosts = ghosts  # carry an adopted object the saliency loses for a few frames (flow)
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self._labels: np.ndarray | None = None  # [h, w] uint16 previous candidates' labels (0: none)
        self._votes = np.zeros(1, np.float32)  # per previous label
        self._adopted = np.zeros(1, bool)
        self._n = 0
        self._gray: np.ndarray | None = None
        self._obj: np.ndarray | None = None  # [h, w] float32 the last frame's objects' alpha (work grid)
        self.ghost: np.ndarray | None = None  # [h, w] float32 this frame's carried objects' alpha, or None

    def __call__(
        self,
        gray: np.ndarray,
        hi: np.ndarray,
        alpha: np.ndarray,
        kept: np.ndarray,
        sal: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """gray [h, w] uint8 the frame, hi [h, w] uint8 0/1 salient, alpha [h, w] float32 the person
        matte (everybody), kept [h, w] float32 the gated person, sal [h, w] float32 the saliency (what
        a lost object's ghost carries; None: no ghosts) -> the held objects' weight [h, w] float32 0..1,
        or None when nothing is held. `self.ghost` then holds the carried objects' alpha, or None."""
        self._n += 1
        h, w = hi.shape
        flow = None
        if self._gray is not None and self._gray.shape == gray.shape:
            flow = flow_to_previous(self._dis, gray, self._gray)  # [h, w, 2]
        self._gray = gray
        side = max(h, w)
        people = cv2.dilate((alpha > 0.5).astype(np.uint8), _disc(max(1, round(self.person_px * side))))
        cand = hi & (1 - people)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        area = stats[:, cv2.CC_STAT_AREA]
        big = area >= self.min_area * h * w
        big[0] = False
        person = (kept > 0.5).astype(np.uint8)
        # larger than the person: the background behind them (a car, a building), not what they hold
        big &= area <= self.max_ratio * max(1, int(person.sum()))
        near = cv2.dilate(person, _disc(max(1, round(self.touch * side)))) if person.any() else person
        touching = np.zeros(n, bool)
        touching[np.unique(labels[(near > 0) & (labels > 0)])] = True
        still = (hi == 0) & (people == 0)
        if flow is not None and person.any() and still.any():
            # what the person holds moves with them; the background they pass moves with the camera.
            # Where the two move alike (a still camera on a still person) motion tells nothing.
            own = np.median(flow[person > 0], axis=0)
            back = np.median(flow[still], axis=0)
            apart = float(np.hypot(*(own - back)))
            if apart > self.move_px:
                for c in np.flatnonzero(big & touching):
                    moved = np.median(flow[labels == c], axis=0)
                    touching[c] = np.hypot(*(moved - own)) < self.with_person * apart
        votes = np.zeros(n, np.float32)
        adopted = np.zeros(n, bool)
        warped = None  # the previous frame's candidates where they are now
        if self._labels is not None and self._labels.shape == labels.shape:
            warped = self._labels if flow is None else self._warp(self._labels, flow, cv2.INTER_NEAREST)
        # a moving object overlaps where it was (carried by the flow), give or take a few px
        prev = None if warped is None else cv2.dilate(warped, _disc(max(1, round(self.carry * side))))
        continued = np.zeros(len(self._votes), bool)  # previous candidates a current one took over
        for c in np.flatnonzero(big):
            contact = 1.0 if touching[c] else 0.0
            before = np.unique(prev[labels == c]) if prev is not None else np.zeros(0, np.int32)
            before = before[before > 0]
            continued[before] = True
            if flow is None:  # the stream's first frame: contact, but no motion to check it by yet
                votes[c], limit = 0.5 * contact, 1.0
            elif self._n <= self.start_frames:  # the next few: what is held from the start, at once
                votes[c], limit = contact, self.adopt
            elif before.size:
                i = before[np.argmax(self._votes[before])]
                votes[c] = self.keep * self._votes[i] + (1.0 - self.keep) * contact
                limit = self.release if self._adopted[before].any() else self.adopt
            else:
                votes[c], limit = (1.0 - self.keep) * contact, self.adopt
            adopted[c] = votes[c] > limit
        new_labels = np.where(big[labels], labels, 0).astype(np.uint16)
        mask = adopted[labels].astype(np.uint8)
        ghost, extra = self._ghosts(flow, warped, continued, new_labels, len(votes))
        if extra:
            votes = np.concatenate([votes, np.asarray(extra, np.float32)])
            adopted = np.concatenate([adopted, np.ones(len(extra), bool)])
        self._labels = new_labels
        self._votes, self._adopted = votes, adopted
        held = None
        if mask.any():
            # the salient region's soft rim around the object, which `hi` (sal > 0.5) cuts off; and the
            # band around the people that the candidates left out, where the object meets the person: without
            # it, RVM's soft lower edge and the object's both fall under 0.5 there and a line of background
            # shows between a rider and the deck (eval-scooter F 0.693 -> 0.733, flicker 7.44 -> 6.90)
            grown = cv2.dilate(mask, _disc(2))
            reach = cv2.dilate(mask, _disc(2 + max(1, round(self.person_px * side))))
            grown = cv2.bitwise_or(grown, cv2.bitwise_and(reach, people))
            held = cv2.GaussianBlur(grown.astype(np.float32), (5, 5), 0)
        self.ghost = ghost
        if sal is not None:  # what the next frame carries where the saliency loses the object
            obj = held * sal if held is not None else None
            if ghost is not None:
                obj = ghost if obj is None else np.maximum(obj, ghost)
            self._obj = obj
        return held

    def _warp(self, image: np.ndarray, flow: np.ndarray, interpolation: int) -> np.ndarray:
        """The previous frame's `image` [h, w] moved to where its pixels are in this frame."""
        h, w = flow.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (xs, ys)
        mx, my = self._grid[0] + flow[..., 0], self._grid[1] + flow[..., 1]
        return cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_CONSTANT)

    def _ghosts(
        self,
        flow: np.ndarray | None,
        warped: np.ndarray | None,
        continued: np.ndarray,
        labels: np.ndarray,
        next_id: int,
    ) -> tuple[np.ndarray | None, list[float]]:
        """An adopted object that the saliency loses (no candidate continues it: a scooter blurred
        mid-jump) is carried by the flow with its last alpha while its vote, decaying as for an object out
        of contact, stays over `release` (~6 frames). Ghosts join `labels` (new ids) and the vote arrays
        in place (ids from `next_id`), so an object that reappears where its ghost is takes over the
        ghost's vote. Returns (the ghosts' alpha [h, w] float32 0..1 on the work grid or None, their
        votes)."""
        if not self.ghosts or flow is None or warped is None or self._obj is None:
            return None, []
        if self._n <= self.start_frames or self._obj.shape != labels.shape:
            return None, []
        lost = np.flatnonzero(self._adopted & ~continued)
        lost = lost[lost > 0]
        if lost.size == 0:
            return None, []
        carried = self._warp(self._obj, flow, cv2.INTER_LINEAR)  # [h, w] float32 last frame's objects
        region = np.zeros(labels.shape, np.uint8)
        extra_votes: list[float] = []
        for i in lost:
            vote = self.keep * float(self._votes[i])
            where = (warped == i) & (labels == 0)
            if vote <= self.release or not where.any():
                continue
            labels[where] = next_id + len(extra_votes)
            extra_votes.append(vote)
            region[where] = 1
        if not extra_votes:
            return None, []
        return carried * cv2.dilate(region, _disc(2)).astype(np.float32), extra_votes
