"""`text_prompt` for `pro`: a small, deterministic grammar over the subjects the pipeline already finds.

No text-conditioned model runs here. What `pro` can tell apart is: people (Robust Video Matting's
matte) vs the salient object (U²-Net small's saliency), everybody vs one main subject, and, among the
people, one by where it is in the frame or by its size. A prompt is read word by word into those choices
and mapped onto subject selection (videobg/matte/subject.py); a word outside the grammar is refused with
the list of words understood (400 invalid_parameter), never ignored.

    kind      people words (person, people, man, woman, dancer, ...)      -> people: RVM's matte
              object words (object, thing, product, item, animal, pet)    -> the salient object: the
                                                                              saliency map is the matte
    count     everyone, everybody, all, both, plural people nouns          -> everybody RVM finds
              one, main, single, a singular noun, or no count word         -> one main subject
    position  left, right, center/centre/middle                            -> the person there: a
                                                                              positional prior times the
                                                                              saliency seeds the choice
    size      largest/biggest, foreground/front/nearest/closest            -> the largest person
              smallest                                                     -> the smallest person

Filler words (the, a, in, on, of, only, keep, ...) carry no choice. Examples:
"the dancer in the center", "everyone", "the person on the left", "the largest person",
"the main subject", "the product". Contradictions ("left right", "everyone on the left": a position
picks one person) are refused too, with what the grammar can do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from videobg.errors import InvalidInput

PEOPLE_ONE = frozenset(
    "person man woman boy girl child kid dancer player rider skater runner human guy lady speaker "
    "presenter athlete surfer singer performer".split()
)
PEOPLE_MANY = frozenset(
    "people persons men women boys girls children kids dancers players riders skaters runners humans "
    "guys ladies crowd".split()
)
OBJECTS = frozenset("object thing product item animal pet".split())
EVERYONE = frozenset("everyone everybody all both".split())
ONE = frozenset("one main single subject".split())
POSITIONS = {"left": "left", "right": "right", "center": "center", "centre": "center", "middle": "center"}
SIZES = {
    "largest": "largest",
    "biggest": "largest",
    "foreground": "largest",  # the nearest person is the one that looks largest
    "front": "largest",
    "nearest": "largest",
    "closest": "largest",
    "smallest": "smallest",
}
FILLER = frozenset(
    "the a an in on at of to and only just keep show cut out who is are that this standing side "
    "please with".split()
)
_WORD = re.compile(r"[a-z]+")


def understood() -> str:
    groups = (
        ("people", sorted(PEOPLE_ONE | PEOPLE_MANY)),
        ("objects", sorted(OBJECTS)),
        ("everybody", sorted(EVERYONE)),
        ("one", sorted(ONE)),
        ("position", sorted(POSITIONS)),
        ("size", sorted(SIZES)),
    )
    return "; ".join(f"{name}: {', '.join(words)}" for name, words in groups)


@dataclass(frozen=True)
class Prompt:
    """The choices a prompt makes. kind: "person" | "object" | "any" (no kind word: pro's default, the
    salient person or object); everyone: keep all people; position / size: pick one person."""

    text: str
    kind: str = "any"
    everyone: bool = False
    position: str | None = None
    size: str | None = None

    def describe(self) -> str:
        if self.kind == "object":
            return "the salient object (saliency matte)"
        if self.everyone:
            return "everybody (person matte, no subject selection)"
        if self.position:
            return f"the person at the {self.position} (positional prior x saliency seeds the choice)"
        if self.size:
            return f"the {self.size} person"
        return "the main subject (pro's default)"


def parse(text: str) -> Prompt:
    """The prompt's choices; InvalidInput naming the words understood for anything else."""
    tokens = re.findall(r"[^\s,.;:!?\"]+", text.lower())
    words = [t for t in tokens if _WORD.fullmatch(t)]
    unknown = [t for t in tokens if not _WORD.fullmatch(t)]  # digits, apostrophes, hyphens: not ours
    kind, everyone, one, plural = "any", False, False, False
    positions: set[str] = set()
    sizes: set[str] = set()
    for w in words:
        if w in PEOPLE_ONE:
            kind = _kind(kind, "person", text)
        elif w in PEOPLE_MANY:
            kind = _kind(kind, "person", text)
            plural = True
        elif w in OBJECTS:
            kind = _kind(kind, "object", text)
        elif w in EVERYONE:
            everyone = True
        elif w in ONE:
            one = True
        elif w in POSITIONS:
            positions.add(POSITIONS[w])
        elif w in SIZES:
            sizes.add(SIZES[w])
        elif w not in FILLER:
            unknown.append(w)
    if unknown:
        raise InvalidInput(
            f"text_prompt: {', '.join(repr(w) for w in dict.fromkeys(unknown))} not understood. pro's "
            f"prompt is a small grammar over what it can find: {understood()} (filler words such as "
            f"'the', 'in', 'on' are fine); e.g. 'the dancer in the center', 'everyone', 'the largest person'"
        )
    if len(positions) > 1 or len(sizes) > 1 or (positions and sizes):
        raise InvalidInput(f"text_prompt {text!r}: give one position or one size word, not several")
    position = next(iter(positions), None)
    size = next(iter(sizes), None)
    if (position or size or one) and (everyone or plural):
        raise InvalidInput(
            f"text_prompt {text!r}: everybody and one subject at once; say 'everyone', or one person "
            f"with a position or size ('the person on the left', 'the largest person')"
        )
    everyone = everyone or plural
    if kind == "object" and (position or size or everyone):  # one salient map: no choice among objects
        raise InvalidInput(
            f"text_prompt {text!r}: position, size and everybody apply to people; for an object say "
            f"'the object' (the salient object is kept)"
        )
    if (position or size) and kind == "any":
        kind = "person"
    return Prompt(text=text.strip(), kind=kind, everyone=everyone, position=position, size=size)


def _kind(current: str, new: str, text: str) -> str:
    if current not in ("any", new):
        raise InvalidInput(f"text_prompt {text!r}: people or an object, not both")
    return new


PRIOR_CENTER_FULL, PRIOR_CENTER_ZERO = 0.35, 0.8  # breakdance J 0.586 at 0.25/0.6, 0.649 here


def positional_prior(position: str, height: int, width: int) -> np.ndarray:
    """[height, width] float32 0..1: how well each pixel fits the position word. Broad plateaus with
    linear falloff, so a subject that is roughly there is fully admitted and one on the far side is not:
    center 1 within 0.35 of the half-diagonal of the centre, 0 past 0.8; left 1 on the left 35 % of the
    width, 0 past 55 % (right mirrored)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    x = (xx + 0.5) / width  # 0..1
    y = (yy + 0.5) / height
    if position == "center":
        d = np.hypot(x - 0.5, y - 0.5) / np.hypot(0.5, 0.5)
        return np.clip((PRIOR_CENTER_ZERO - d) / (PRIOR_CENTER_ZERO - PRIOR_CENTER_FULL), 0.0, 1.0)
    if position == "left":
        return np.clip((0.55 - x) / 0.2, 0.0, 1.0)
    if position == "right":
        return np.clip((x - 0.45) / 0.2, 0.0, 1.0)
    raise ValueError(f"unknown position {position!r}")
