import math

import pytest

from videobg.errors import InvalidInput
from videobg.media.timeparse import parse_time, parse_trim
from videobg.types import Trim

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (12, 12.0),
        (12.5, 12.5),
        ("12.5", 12.5),
        (" 7 ", 7.0),
        (".5", 0.5),
        ("3.", 3.0),
        ("00:00:01", 1.0),
        ("00:00:03", 3.0),
        ("1:02:03.25", 3723.25),
        ("01:30", 90.0),
        ("1:05.5", 65.5),
        ("100:00:00", 360000.0),
    ],
)
def test_parse_time_accepts(value, seconds):
    assert parse_time(value, field="start") == pytest.approx(seconds)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_parse_time_absent_is_none(value):
    assert parse_time(value, field="start") is None


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -0.5,
        "-3",
        "-00:00:01",
        math.nan,
        math.inf,
        "nan",
        "inf",
        "abc",
        "1e3",
        "12s",
        "1:60",
        "00:61:00",
        "1:2:3:4",
        "::",
        "1,5",
        True,
        [1],
        {"s": 1},
    ],
)
def test_parse_time_rejects_naming_the_field(value):
    with pytest.raises(InvalidInput) as err:
        parse_time(value, field="trim_start")
    assert "trim_start" in err.value.message
    assert err.value.code == "invalid_parameter"


def test_parse_trim_defaults_and_clock_strings():
    assert parse_trim(None, None) == Trim(0.0, None)
    assert parse_trim(None, None).is_full
    assert parse_trim("00:00:01", "00:00:03") == Trim(1.0, 3.0)
    assert parse_trim(1, "") == Trim(1.0, None)


@pytest.mark.parametrize(("start", "end"), [(3, 1), (2, 2), ("00:00:05", "4.9"), (None, 0)])
def test_parse_trim_end_must_follow_start(start, end):
    with pytest.raises(InvalidInput, match="must be after"):
        parse_trim(start, end)


def test_parse_trim_custom_field_names_in_errors():
    with pytest.raises(InvalidInput, match="end_time"):
        parse_trim(0, "soon", start_field="start_time", end_field="end_time")
