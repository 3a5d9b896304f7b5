"""Unit-tier fixtures."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool (Debian's `prometheus` package): skipped on a developer's machine without it, a failure in
    CI (`CI` set, as .ci/run does), where it must be installed."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found in CI: .ci/run installs Debian's `prometheus` package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found
