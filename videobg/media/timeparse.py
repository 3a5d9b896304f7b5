"""Parse user-given times (trim start/end) into seconds.

Accepted: a number of seconds (int, float, or a string such as "12.5"), or a clock string
"hh:mm:ss(.fff)" / "mm:ss(.fff)" where minutes and seconds are below 60. Empty or None means "not set".
"""

from __future__ import annotations

import math
import re
from numbers import Real

from videobg.errors import InvalidInput
from videobg.types import Trim

_SECONDS = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_CLOCK = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


def parse_time(value: int | float | str | None, *, field: str) -> float | None:
    """Seconds as a float, or None when the value is absent; InvalidInput naming `field` otherwise."""
    if value is None:
        return None
    # bool is an int subclass; "true" is never a time
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a time in seconds or hh:mm:ss, not a boolean")
    if isinstance(value, Real):
        return _check(float(value), field, value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("-"):
            raise InvalidInput(f"{field} must not be negative (got {value!r})")
        if _SECONDS.match(text):
            return _check(float(text), field, value)
        clock = _CLOCK.match(text)
        if clock:
            return _check(_clock_seconds(clock, field, value), field, value)
    raise InvalidInput(
        f"{field} must be seconds (e.g. 12.5) or a time as hh:mm:ss(.fff) or mm:ss(.fff); got {value!r}"
    )


def parse_trim(start, end, *, start_field: str = "start", end_field: str = "end") -> Trim:
    """Trim from two user values; a missing start is 0, a missing end is 'to the end'."""
    start_s = parse_time(start, field=start_field)
    end_s = parse_time(end, field=end_field)
    start_s = 0.0 if start_s is None else start_s
    if end_s is not None and end_s <= start_s:
        raise InvalidInput(f"{end_field} ({end_s:g} s) must be after {start_field} ({start_s:g} s)")
    return Trim(start=start_s, end=end_s)


def _clock_seconds(match: re.Match[str], field: str, raw: object) -> float:
    hours = int(match["h"]) if match["h"] is not None else 0
    minutes = int(match["m"])
    seconds = float(match["s"])
    if minutes >= 60 or seconds >= 60:
        raise InvalidInput(f"{field}: minutes and seconds must be below 60 in {raw!r}")
    return hours * 3600 + minutes * 60 + seconds


def _check(seconds: float, field: str, raw: object) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise InvalidInput(f"{field} must be a finite number of seconds (got {raw!r})")
    if seconds < 0:
        raise InvalidInput(f"{field} must not be negative (got {raw!r})")
    return seconds
