"""The local Prometheus's config (devstack/prometheus_local.py): what `scrape_config` generates is a config
promtool accepts, rule file included, with one target per service and intervals Prometheus can take."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from devstack import prometheus_local as prom

pytestmark = pytest.mark.unit


def test_durations() -> None:
    assert prom._duration(1.0) == "1s"
    assert prom._duration(5) == "5s"
    assert prom._duration(0.5) == "500ms"
    assert prom._duration(1.5) == "1500ms"  # "1.5s" is not a Prometheus duration


def test_scrape_config(tmp_path: Path, promtool: str) -> None:
    targets = {"gateway": 41001, "segmenter": 41002, "encoder": 41003}
    config = prom.scrape_config(targets, scrape_interval_s=1.0)
    assert config["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    assert config["rule_files"] == [str(prom.RULES)]
    [job] = config["scrape_configs"]
    assert job["job_name"] == prom.JOB
    got = {c["labels"]["instance"]: c["targets"] for c in job["static_configs"]}
    assert got == {name: [f"127.0.0.1:{port}"] for name, port in targets.items()}
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and str(prom.RULES) in result.stdout, result.stdout
