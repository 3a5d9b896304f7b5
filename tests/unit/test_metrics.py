"""Metrics catalogue, dashboard and alert rules: every metric a PromQL expression in deploy/grafana names is
one the services export (registered in videobg/metrics.py's registry AND updated somewhere in services/ or
videobg/), label values in matchers are ones the code sets, names follow Prometheus conventions, and
docs/OPERATIONS.md lists every metric and every alert."""

from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from videobg import metrics
from videobg.errors import ERROR_TABLE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboard.json"
ALERTS = REPO / "deploy" / "grafana" / "alerts.yaml"
OPERATIONS = REPO / "docs" / "OPERATIONS.md"
CATALOGUE = REPO / "videobg" / "metrics.py"

# Defined for code that does not exist yet. The test fails once something updates one of them, so the
# entry is removed then and the metric gets the same check as the others.
PENDING: dict[str, str] = {}
# labels Prometheus itself attaches to every scraped series (or Kubernetes service discovery does)
TARGET_LABELS = {"instance", "job", "pod", "namespace", "le"}
KNOWN_VALUES = {
    "stage": set(metrics.STAGES),
    "outcome": set(metrics.OUTCOMES) | {"delivered", "failed"},  # jobs | webhook deliveries
    "error_code": set(ERROR_TABLE) | {"other", ""},
    "kind": {"allocated", "reserved", "total"},
}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


# --- what the code exports -----------------------------------------------------------------------------


@functools.cache
def objects() -> dict[str, MetricWrapperBase]:
    """Python name in videobg.metrics -> metric object."""
    return {n: o for n, o in vars(metrics).items() if isinstance(o, MetricWrapperBase)}


@functools.cache
def families() -> dict[str, str]:
    """family name -> type, for every videobg_ family in the registry."""
    return {f.name: f.type for f in metrics.REGISTRY.collect() if f.name.startswith(f"{metrics.NAMESPACE}_")}


def sample_names(family: str, kind: str) -> set[str]:
    return {
        "counter": {f"{family}_total"},
        "gauge": {family},
        "histogram": {f"{family}_bucket", f"{family}_sum", f"{family}_count"},
        "summary": {family, f"{family}_sum", f"{family}_count"},
    }[kind]


def family_of(name: str) -> str | None:
    """The registered family a PromQL series name belongs to (strips _total/_bucket/_sum/_count)."""
    for family, kind in families().items():
        if name in sample_names(family, kind):
            return family
    return None


@functools.cache
def sources() -> dict[Path, str]:
    files = [*sorted((REPO / "services").rglob("*.py")), *sorted((REPO / "videobg").rglob("*.py"))]
    return {p: p.read_text() for p in files if p != CATALOGUE}


UPDATE = r"\s*\.\s*(?:labels|inc|dec|set|observe|time)\b"


@functools.cache
def helpers() -> dict[str, set[str]]:
    """Functions of videobg/metrics.py -> the metric objects they update (`count_job` -> JOBS, ...)."""
    tree = ast.parse(CATALOGUE.read_text())
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            text = ast.get_source_segment(CATALOGUE.read_text(), node) or ""
            out[node.name] = {n for n in objects() if re.search(rf"\b{n}{UPDATE}", text)}
    return out


def updated(attr: str) -> list[str]:
    """Where the metric object `attr` is updated: directly, or through a videobg.metrics helper called from
    services/ or videobg/ (places as 'path: what')."""
    found = []
    for path, text in sources().items():
        rel = path.relative_to(REPO)
        if re.search(rf"\b{attr}{UPDATE}", text):
            found.append(f"{rel}: {attr}")
        for helper, attrs in helpers().items():
            if attr in attrs and re.search(rf"\b{helper}\s*\(", text):
                found.append(f"{rel}: {helper}()")
    return found


def attr_of(family: str) -> str:
    return next(n for n, o in objects().items() if o.describe()[0].name == family)


# --- what the dashboard and the rules use ---------------------------------------------------------------


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def alert_rules() -> list[dict]:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the rule file (pip install pyyaml)")
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    out: list[str] = []

    def walk(o: object) -> None:
        if isinstance(o, dict):
            if isinstance(o.get("expr"), str):
                out.append(o["expr"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(dashboard())
    return out


def all_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every PromQL expression in the dashboard and the rule file."""
    return [("dashboard", e) for e in dashboard_exprs()] + [(r["alert"], r["expr"]) for r in alert_rules()]


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers that are not functions, keywords, label names or
    parts of numbers, durations and strings."""
    e = re.sub(r"\$\{?\w+\}?", "5m", expr)  # Grafana variables ($__rate_interval)
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', e)
    e = re.sub(r"\{[^}]*\}", "", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)  # ranges, subqueries
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\b(?:group_left|group_right)\b", " ", e)
    names = set(re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", e))
    return names - PROMQL_WORDS


def label_matchers(expr: str) -> list[tuple[str, str, str]]:
    """(label, operator, value) of every matcher inside {...}."""
    out = []
    for body in re.findall(r"\{([^}]*)\}", expr):
        out += re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body)
    return out


def test_metric_name_parser() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (stage, le) (rate(videobg_stage_duration_seconds_bucket"
        '{stage=~"segment|encode", le!="1e3"}[$__rate_interval]))) > 1e3 unless on (stage) '
        'label_replace(max_over_time(videobg_queue_pending[15m:1m] offset 5m), "x", "$1", "stage", "(.*)")'
        " and (sum(videobg_worker_ready) or vector(0)) < 1"
    )
    assert metric_names(expr) == {
        "videobg_stage_duration_seconds_bucket",
        "videobg_queue_pending",
        "videobg_worker_ready",
    }
    assert label_matchers(expr) == [("stage", "=~", "segment|encode"), ("le", "!=", "1e3")]


# --- the checks -----------------------------------------------------------------------------------------


def test_every_expression_uses_exported_metrics() -> None:
    problems = []
    for where, expr in all_exprs():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        for name in sorted(names):
            family = family_of(name)
            if family is None:
                problems.append(f"{where}: {name} is not registered in videobg/metrics.py's REGISTRY")
            elif family not in PENDING and not updated(attr_of(family)):
                problems.append(f"{where}: {name} ({attr_of(family)}) is registered but nothing updates it")
    assert not problems, "\n".join(problems)


def test_every_metric_is_updated_except_the_pending_ones() -> None:
    for family in families():
        places = updated(attr_of(family))
        if family in PENDING:
            assert not places, (
                f"{family} is updated now ({places}): remove it from PENDING in this test and from the "
                "'not incremented yet' note in docs/OPERATIONS.md"
            )
        else:
            assert places, (
                f"{family} ({attr_of(family)}) is defined but nothing in services/ or videobg/ updates it"
            )


def test_label_values_in_expressions_are_ones_the_code_sets() -> None:
    for where, expr in all_exprs():
        for label, _, value in label_matchers(expr):
            if label in KNOWN_VALUES:
                for v in value.split("|"):
                    assert v in KNOWN_VALUES[label], f"{where}: {label}={v!r} is never set ({expr})"
        for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                known = {lab for o in objects().values() for lab in o._labelnames} | TARGET_LABELS
                assert label in known, f"{where}: grouping by unknown label {label!r} ({expr})"


def test_naming_conventions() -> None:
    assert families(), "no videobg metric registered"
    for name, obj in objects().items():
        family = obj.describe()[0]
        kind = family.type
        assert re.fullmatch(r"videobg_[a-z][a-z0-9_]*[a-z0-9]", family.name), family.name
        assert not family.name.endswith("_total"), f"{name}: prometheus-client adds _total to counters"
        assert family.documentation.strip(), f"{name}: no help text"
        assert not re.search(r"_(ms|milliseconds|us|kb|mb|gb|percent|minutes|hours)(_|$)", family.name), (
            f"{family.name}: use base units (seconds, bytes, ratios)"
        )
        if kind == "histogram":
            assert family.name.endswith(("_seconds", "_bytes")), f"{family.name}: a histogram needs a unit"
        if "seconds" in family.name or "bytes" in family.name:
            assert family.name.endswith(("_seconds", "_bytes")), f"{family.name}: the unit goes last"
        if kind == "counter":
            assert sample_names(family.name, kind) == {f"{family.name}_total"}
        for label in obj._labelnames:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", label), f"{name}: label {label!r}"
            assert label not in {"job", "instance", "id", "job_id", "url", "owner", "user"}, (
                f"{name}: label {label!r} clashes with a target label or has unbounded values"
            )


def test_dashboard() -> None:
    dash = dashboard()
    assert dash["schemaVersion"] >= 38
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in [p, *p["targets"]]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    used = {family_of(n) for e in dashboard_exprs() for n in metric_names(e)}
    wanted = {
        "frames",  # throughput
        "jobs",
        "stage_duration_seconds",  # latency
        "queue_pending",  # backlog
        "queue_ack_pending",
        "redeliveries",  # errors
        "gpu_memory_bytes",
        "model_load_seconds",
        "webhook_deliveries",
    }
    assert {f"videobg_{w}" for w in wanted} <= used
    quantiles = {
        m.group(1)
        for e in dashboard_exprs()
        if "videobg_stage_duration_seconds_bucket" in e
        and (m := re.match(r"histogram_quantile\(([\d.]+),", e))
    }
    assert quantiles == {"0.5", "0.95", "0.99"}


def test_alert_rules() -> None:
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert re.fullmatch(r"Videobg[A-Z][A-Za-z]+", r["alert"]), r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert r["annotations"]["runbook_url"] == f"docs/OPERATIONS.md#{r['alert'].lower()}", r["alert"]
    exprs = " ".join(r["expr"] for r in rules)
    assert 'videobg_worker_ready{stage="segment"}' in exprs  # no segmenter ready
    assert "deriv(" in exprs and "videobg_queue_pending" in exprs  # backlog growing
    assert 'outcome="failed"' in exprs and "[10m]" in exprs  # error rate
    assert "videobg_queue_ack_pending" in exprs and "videobg_frames_total" in exprs  # stuck


def test_operations_doc_lists_every_metric_and_alert() -> None:
    doc = OPERATIONS.read_text()
    metrics_section = doc.split("\n## Metrics", 1)[1].split("\n## ", 1)[0]
    alerts_section = doc.split("\n## Alerts", 1)[1].split("\n## ", 1)[0]
    for family, kind in families().items():
        shown = family + ("_total" if kind == "counter" else "")
        assert f"`{shown}`" in metrics_section, f"{shown} missing from docs/OPERATIONS.md, Metrics"
    for name in PENDING:
        assert f"`{name}_total`" in metrics_section
    for r in alert_rules():
        assert f"### {r['alert']}" in alerts_section, (
            f"{r['alert']} has no heading in docs/OPERATIONS.md, Alerts"
        )


# --- helpers of videobg.metrics -------------------------------------------------------------------------


def test_job_labels_are_bounded() -> None:
    assert metrics.job_labels("pixelcut", "light", "webm") == {
        "dialect": "pixelcut",
        "model": "light",
        "format": "webm_vp9",
    }
    assert metrics.job_labels("Grpc", "../../" * 20, "avi") == {
        "dialect": "grpc",
        "model": "other",
        "format": "other",
    }
    assert metrics.job_labels(None, "", None)["model"] == "default"


def test_count_job() -> None:
    labels = {"dialect": "grpc", "model": "light", "format": "gif"}

    def value(name: str, **lab: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, lab) or 0.0

    done = dict(labels, outcome="completed", error_code="")
    bad = dict(labels, outcome="failed", error_code="other")
    before = value("videobg_jobs_total", **done), value("videobg_video_seconds_total", model="light")
    before_bad = value("videobg_jobs_total", **bad)
    metrics.count_job(labels, "completed", billed_seconds=1.5)
    metrics.count_job(labels, "failed", "no_such_code")
    assert value("videobg_jobs_total", **done) == before[0] + 1
    assert value("videobg_video_seconds_total", model="light") == before[1] + 1.5
    assert value("videobg_jobs_total", **bad) == before_bad + 1
    with pytest.raises(ValueError):
        metrics.count_job(labels, "finished")


def test_gpu_memory_not_sampled_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)  # a service that never imported torch
    metrics.sample_gpu_memory()
    assert "torch" not in sys.modules, "sampling GPU memory must not import torch"
