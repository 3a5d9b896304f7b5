"""A real Prometheus beside the local stack: a scrape config for the services' metrics ports, the server as
a child process on loopback, and a small client for its HTTP API (the live test and the screenshot script
read the same figures an SRE would).

    prom = start_prometheus(data / "prometheus", {"gateway": 40123, "segmenter": 40124}, scrape_interval_s=1)
    prom.url                                    # http://127.0.0.1:<port>, the graph page is <url>/graph
    query(prom.url, "sum by (stage) (videobg_frames_total)")   # [{"metric": {...}, "value": [t, "90"]}]
    prom.stop()

The server is Debian's `prometheus` package (`apt-get install prometheus`, which also brings `promtool`);
the rule file it evaluates is deploy/grafana/alerts.yaml, the one the Kubernetes side ships, so its
/alerts page shows what would fire. The Kubernetes side keeps its pod annotations: this is local only.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from devstack.procs import LOOPBACK, ServerProc, _wait_ready, find_binary, free_ports, spawn

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "grafana" / "alerts.yaml"
JOB = "videobg"  # the `job` label of every scraped series


class PromQueryError(RuntimeError):
    """Prometheus refused a query (its errorType and error), e.g. a PromQL parse error."""


def _duration(seconds: float) -> str:
    """A Prometheus duration string; whole milliseconds, since `1.5s` is not one."""
    ms = max(1, math.ceil(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scrape_config(
    targets: Mapping[str, int], *, scrape_interval_s: float, rule_files: Sequence[Path] = (RULES,)
) -> dict[str, Any]:
    """prometheus.yml as a dict: one job, one static target per service (`instance` = the service's name,
    which reads better in legends than 127.0.0.1:<port>), rules evaluated as often as targets are scraped."""
    interval = _duration(scrape_interval_s)
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,  # may not exceed the interval (the default, 10s, would)
            "evaluation_interval": interval,
        },
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": JOB,
                "static_configs": [
                    {"targets": [f"{LOOPBACK}:{port}"], "labels": {"instance": name}}
                    for name, port in sorted(targets.items())
                ],
            }
        ],
    }


def start_prometheus(
    data_dir: str | Path,
    targets: Mapping[str, int],
    *,
    port: int = 0,
    scrape_interval_s: float = 5.0,
    rule_files: Sequence[Path] = (RULES,),
    retention: str = "7d",
    timeout_s: float = 60.0,
    binary: str | None = None,
) -> ServerProc:
    """Prometheus scraping `targets` (service name -> metrics port on 127.0.0.1), its TSDB and config
    under `data_dir`, listening on 127.0.0.1:`port` (0: a free port, passed explicitly: Prometheus's own
    default is 9090). Ready = `/-/ready` answers 200 (the rule files loaded, the TSDB open)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    config_path = data_dir / "prometheus.yml"
    # JSON is YAML: no YAML writer needed, and the file stays readable.
    config = scrape_config(targets, scrape_interval_s=scrape_interval_s, rule_files=rule_files)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    argv = [
        binary or find_binary("prometheus"),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        f"--storage.tsdb.retention.time={retention}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--log.level=warn",
    ]
    t0 = time.monotonic()
    popen, log_path = spawn(argv, data_dir, "prometheus.log")
    proc = ServerProc(
        name="prometheus",
        popen=popen,
        data_dir=data_dir,
        log_path=log_path,
        ports={"client": port},
        url=f"http://{LOOPBACK}:{port}",
        stop_grace_s=10.0,  # it writes the head block's WAL checkpoint on SIGTERM
    )

    def ready() -> bool:
        try:
            return httpx.get(f"{proc.url}/-/ready", timeout=1.0, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_ready(proc, ready, timeout_s, t0)
    return proc


# --- the HTTP API ------------------------------------------------------------------------------------------


def api(base_url: str, path: str, **params: Any) -> Any:
    """GET <base>/api/v1/<path>; the `data` of a success, else PromQueryError with Prometheus's message."""
    r = httpx.get(f"{base_url}/api/v1/{path}", params=params, timeout=30.0, trust_env=False)
    try:
        body = r.json()
    except ValueError as e:
        raise PromQueryError(f"{path}: HTTP {r.status_code}, not JSON: {r.text[:200]}") from e
    if body.get("status") != "success":
        raise PromQueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def query(base_url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query: [{"metric": {labels}, "value": [t, "v"]}, ...] (a scalar result comes as one
    series with no labels)."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = api(base_url, "query", **params)
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def query_range(base_url: str, expr: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
    """A range query: [{"metric": {labels}, "values": [[t, "v"], ...]}, ...]."""
    data = api(
        base_url, "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=_duration(step_s)
    )
    return data["result"]


def values(series: Mapping[str, Any]) -> list[float]:
    """The finite values of one result series (instant or range); NaN (e.g. a quantile of no
    observations in the window) and infinities left out."""
    points = series["values"] if "values" in series else [series["value"]]
    out = [float(v) for _, v in points]
    return [v for v in out if math.isfinite(v)]


def by_label(result: Sequence[Mapping[str, Any]], label: str) -> dict[str, float]:
    """An instant result as {value of `label`: value}; series without the label under ""."""
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in result}
