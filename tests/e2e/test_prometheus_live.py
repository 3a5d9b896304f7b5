"""The Grafana board and the alert rules against a real Prometheus scraping the whole local stack (services/
stack.py with `metrics=True`, as `make serve METRICS=1`): a small batch goes through REST, then every board
expression and every rule expression is sent to Prometheus's HTTP API. Each must parse; the throughput,
latency and backlog panels must return series with plausible values, and the counters must agree with what
was done: frames counted = frames in the results, jobs counted = jobs submitted. The healthy stack must
leave every rule evaluated without error and no alert active.

Its own stack (not the session one): the counters start at zero, and the scrape interval is 1 s.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import prometheus_local as prom
from devstack.stack import FileServer, Stack, StackConfig, download, submit, wait_job
from tests.conftest import model_dir
from tests.e2e.conftest import running_stack
from tests.mediacheck import summarize
from videobg import metrics

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboard.json"
ALERTS = REPO / "deploy" / "grafana" / "alerts.yaml"
CLIP = "people/androidx_bt601.mov"  # 640x428, 30 frames at 29.97 fps
JOBS = 3
SCRAPE_S = 1.0
RATE_WINDOW = "5s"  # what Grafana's $__rate_interval is at a 1 s scrape: max(4 x scrape, step + scrape)
JOB_TIMEOUT_S = 300.0
SETTLE_S = 60.0  # generous: a loaded 2-core machine may scrape late
ROWS_WITH_DATA = ("Throughput", "Latency", "Backlog")
NATS_STAGES = {"ingest", "segment", "encode"}  # stages fed by a JetStream work queue


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("prometheus") is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus not found in CI: .ci/run installs Debian's `prometheus` package")
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    models = model_dir()
    if not (models / "rvm_mobilenetv3_fp32.onnx").exists():
        pytest.skip(f"model weights not found in {models} (make models)")

    def config() -> StackConfig:
        return StackConfig(
            data_dir=tmp_path_factory.mktemp("observed"),
            http_port=0,
            model_dir=models,
            metrics=True,
            scrape_interval_s=SCRAPE_S,
            env={"VBG_QUEUE_METRICS_S": str(SCRAPE_S)},  # the stages' queue gauges, as often as scraped
        )

    with running_stack(config, "observed stack") as stack:
        yield stack


def until(check: Callable[[], Any], what: str, timeout_s: float = SETTLE_S) -> Any:
    """Poll `check` until it returns something truthy; its last value, or AssertionError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus never showed {what} within {timeout_s:.0f} s")
        time.sleep(0.5)


def panels_by_row() -> list[tuple[str, dict]]:
    """(row title, panel) of every non-row panel, in board order (rows expanded or collapsed)."""
    out: list[tuple[str, dict]] = []
    row = ""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            out += [(row, p) for p in panel.get("panels", [])]
        else:
            out.append((row, panel))
    return out


def grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_WINDOW)


@pytest.fixture(scope="module")
def batch(observed: Stack, media: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """JOBS jobs submitted together, all completed, their results decoded; then the final counter values
    scraped (waited for, not slept for)."""
    src = media / CLIP
    out = tmp_path_factory.mktemp("results")
    assert observed.prometheus is not None
    url = observed.prometheus.url
    # Prometheus scrapes every service before work starts, so the board shows the batch from zero
    until(lambda: prom.query(url, f'count(up{{job="{prom.JOB}"}} == 1) == 5'), "all five services up")
    start = time.time()
    with FileServer(src.parent) as files:
        ids = [submit(observed.url, files.url_for(src), "#00FF00", "mp4_h264") for _ in range(JOBS)]
        with ThreadPoolExecutor(JOBS) as pool:
            statuses = list(pool.map(lambda j: wait_job(observed.url, j, timeout_s=JOB_TIMEOUT_S), ids))
    assert [s["status"] for s in statuses] == ["completed"] * JOBS, statuses
    frames = sum(
        summarize(download(s["result_url"], out / f"{i}.mp4")).frames for i, s in enumerate(statuses)
    )
    assert frames >= JOBS * 29, frames
    until(
        lambda: prom.query(url, f'sum(videobg_jobs_total{{outcome="completed"}}) == {JOBS}'),
        f"{JOBS} completed jobs",
    )
    until(
        lambda: prom.query(url, f'sum(videobg_frames_total{{stage="encode"}}) == {frames}'),
        f"{frames} encoded frames",
    )
    # the queues drained, as the stages last reported them
    until(
        lambda: prom.query(url, "max(videobg_queue_pending + videobg_queue_ack_pending) == 0"), "empty queues"
    )
    return {"start": start, "end": time.time(), "frames": frames, "url": url}


def test_counters_equal_what_was_done(batch: dict[str, Any]) -> None:
    url = batch["url"]
    submitted = prom.query(url, "sum(videobg_jobs_submitted_total)")
    assert prom.values(submitted[0]) == [JOBS]
    outcomes = prom.by_label(prom.query(url, "sum by (outcome) (videobg_jobs_total)"), "outcome")
    assert outcomes == {"completed": JOBS}
    frames = prom.by_label(prom.query(url, "sum by (stage) (videobg_frames_total)"), "stage")
    # every frame of every result was matted, composited and encoded exactly once
    assert frames == {"segment": batch["frames"], "composite": batch["frames"], "encode": batch["frames"]}
    ready = prom.by_label(prom.query(url, "sum by (stage) (videobg_worker_ready)"), "stage")
    assert {s: ready.get(s) for s in metrics.STAGES} == dict.fromkeys(metrics.STAGES, 1.0), ready


def test_every_board_expression_parses_and_the_main_rows_have_data(batch: dict[str, Any]) -> None:
    url, start, end = batch["url"], batch["start"] - 5 * SCRAPE_S, batch["end"]
    wall_s = batch["end"] - batch["start"]
    # a quantile is interpolated inside the bucket its rank falls in: at most the first bound >= wall time
    latency_cap = min(b for b in (*metrics.STAGE_BUCKETS, float("inf")) if b >= wall_s)
    empty = []
    for row, panel in panels_by_row():
        for target in panel["targets"]:
            expr = grafana_to_promql(target["expr"])
            result = prom.query_range(url, expr, start, end, SCRAPE_S)  # raises on a parse error
            where = f"{row} / {panel['title']}: {expr}"
            if row not in ROWS_WITH_DATA:
                continue
            if not result:
                empty.append(where)
                continue
            series = {json.dumps(s["metric"], sort_keys=True): prom.values(s) for s in result}
            for labels, vals in series.items():
                assert vals, f"{where}: {labels} has no finite value"
                assert min(vals) >= 0, f"{where}: {labels} negative: {min(vals)}"
            if "videobg_frames_total" in expr:
                got = {s["metric"]["stage"]: max(prom.values(s)) for s in result}
                assert set(got) == {"segment", "composite", "encode"}, where
                # frames/s: some, and never more than the whole batch in one second
                assert all(0 < v <= batch["frames"] for v in got.values()), (where, got)
            if "videobg_stage_duration_seconds_bucket" in expr or "videobg_inference_seconds" in expr:
                cap = latency_cap if "stage_duration" in expr else max(metrics.INFERENCE_BUCKETS)
                for labels, vals in series.items():
                    assert 0 < max(vals) <= cap, (where, labels, max(vals), cap)
            if "videobg_stage_duration_seconds_bucket" in expr:
                assert {s["metric"]["stage"] for s in result} >= NATS_STAGES, where
            if "videobg_queue_pending" in expr or "videobg_queue_ack_pending" in expr:
                assert {s["metric"]["stage"] for s in result} == NATS_STAGES, where
                assert all(max(v) <= JOBS for v in series.values()), (where, series)
            if "videobg_queue_oldest_age_seconds" in expr:
                assert all(max(v) <= wall_s + 10 * SCRAPE_S for v in series.values()), (where, series)
            if "videobg_jobs_total" in expr:
                assert any(s["metric"].get("outcome") == "completed" for s in result), where
    assert not empty, "panels with no series after a batch:\n" + "\n".join(empty)


def test_every_rule_parses_evaluates_and_stays_quiet_on_a_healthy_stack(batch: dict[str, Any]) -> None:
    url = batch["url"]
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        prom.query(url, rule["expr"])  # raises on a parse error

    def evaluated() -> dict[str, dict] | None:
        loaded = {r["name"]: r for g in prom.api(url, "rules")["groups"] for r in g["rules"]}
        done = all(r.get("lastEvaluation", "").startswith("20") for r in loaded.values())
        return loaded if done and len(loaded) == len(rules) else None

    # the same file, loaded by Prometheus itself (rule_files) and evaluated every scrape interval
    loaded = until(evaluated, "every rule evaluated")
    assert set(loaded) == {r["alert"] for r in rules}
    for name, r in loaded.items():
        assert r["health"] == "ok", (name, r.get("lastError"))

    # a short while after start (before the first scrape) VideobgNoSegmenterReady may be pending; once
    # every service is scraped and the batch is done, nothing may be active
    def quiet() -> bool:
        return not prom.api(url, "alerts")["alerts"]

    until(quiet, "no active alert on a healthy stack")
