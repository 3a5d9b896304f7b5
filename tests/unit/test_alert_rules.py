"""The alert rules, tested the way Prometheus reads them: `promtool check rules` on deploy/grafana/alerts.yaml,
`promtool test rules` on deploy/grafana/alerts_test.yaml (input series -> expected alerts at given times),
every alert covered there by a test where it fires and a test where it stays quiet, and every alert's
runbook_url pointing at its entry in docs/OPERATIONS.md, which says what it means, three things to check
first and how to mitigate.

promtool comes with Debian's `prometheus` package (the `promtool` fixture, tests/unit/conftest.py: a skip
on a developer's machine without it, a failure in CI).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "grafana" / "alerts.yaml"
ALERT_TESTS = REPO / "deploy" / "grafana" / "alerts_test.yaml"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for group in doc["groups"] for r in group["rules"]]


def minutes(duration: str) -> float:
    """A promtool eval_time or a rule's `for` (e.g. 90s, 15m, 1h) in minutes."""
    m = re.fullmatch(r"(\d+)([smh])", duration)
    assert m, duration
    return int(m.group(1)) * {"s": 1 / 60, "m": 1, "h": 60}[m.group(2)]


def test_promtool_check_rules(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests(promtool: str) -> None:
    result = run([promtool, "test", "rules", str(ALERT_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_a_bad_series_and_not_on_a_healthy_one() -> None:
    """Each alert has a test case where it fires, and one where it is expected quiet at a time at least as
    late as the earliest firing (so the quiet one is not quiet only because its `for` has not elapsed)."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    firing: dict[str, list[float]] = {}
    quiet: dict[str, list[float]] = {}
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            when = minutes(check["eval_time"])
            (firing if check.get("exp_alerts") else quiet).setdefault(check["alertname"], []).append(when)
    for rule in rules():
        name = rule["alert"]
        assert name in firing, f"{name}: no test where it fires"
        first = min(firing[name])
        assert first >= minutes(rule["for"]), f"{name} expected firing before its `for` elapsed"
        assert any(t >= first for t in quiet.get(name, [])), (
            f"{name}: no test where it stays quiet at or after {first:g}m"
        )


def alert_entries() -> dict[str, str]:
    """docs/OPERATIONS.md, section Alerts: alert name -> the text under its ### heading."""
    doc = OPERATIONS.read_text()
    section = doc.split("\n## Alerts", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\S+)\s*$", section, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_alert_links_a_runbook_entry() -> None:
    entries = alert_entries()
    for rule in rules():
        name = rule["alert"]
        # GitHub's (and most renderers') anchor of "### VideobgJobStuck" is #videobgjobstuck
        assert rule["annotations"]["runbook_url"] == f"docs/OPERATIONS.md#{name.lower()}", name
        assert name in entries, f"{name} has no ### heading in docs/OPERATIONS.md, Alerts"
        text = entries[name]
        assert "**Means.**" in text, f"{name}: the runbook does not say what it means"
        checks = text.split("**Check first.**", 1)
        assert len(checks) == 2, f"{name}: no 'Check first' list"
        numbered = re.findall(r"^\d\. ", checks[1].split("**Mitigate.**", 1)[0], flags=re.M)
        assert len(numbered) == 3, f"{name}: 'Check first' should list three things, found {len(numbered)}"
        assert "**Mitigate.**" in text, f"{name}: the runbook does not say how to mitigate"
    assert set(entries) == {r["alert"] for r in rules()}, "an entry in docs/OPERATIONS.md has no rule"
