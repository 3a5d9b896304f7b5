"""docs/OPERATIONS.md's table of every setting is the one scripts/settings_table.py makes from the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_table_is_current() -> None:
    gen = _generator()
    doc = (REPO / "docs" / "OPERATIONS.md").read_text()
    assert gen.current(doc) == gen.table(), "run: .venv/bin/python scripts/settings_table.py --write"


def test_every_setting_has_a_meaning_and_a_reader() -> None:
    gen = _generator()
    rows = gen.rows()
    assert len(rows) > 60
    for env, _default, meaning, who in rows:
        assert meaning, f"{env}: give the field a comment in its settings class (it is the documentation)"
        assert who, env
    core = {name for name in gen.CoreSettings.model_fields}
    assert set(gen.CORE_READERS) == core, "say in CORE_READERS which services read each VIDEOBG_ setting"


def test_one_name_per_knob() -> None:
    """No service setting repeats a media-core setting under another prefix (they used to shadow)."""
    gen = _generator()
    core = set(gen.CoreSettings.model_fields)
    for cls, _env, _who in gen.SECTIONS[1:]:
        own = {n for n in cls.__annotations__ if n in cls.model_fields} - gen.NESTED
        assert not own & core, f"{cls.__name__} shadows {own & core}"
