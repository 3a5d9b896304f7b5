"""python -m conformance --base URL --key KEY [options]: run the seeds' client flows against a server.

    python -m conformance --base http://127.0.0.1:8080 --key vbg_... --sample clip.mov --image bg.jpg
    python -m conformance --base https://api.example.com --key sk... --video-url https://cdn/clip.mp4 \\
        --sample clip.mp4 --uploads-path ''

Prints a table (case, expected: quoted from the seed, got, result) and exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import sys
import tempfile
import time
from pathlib import Path

from conformance import common, pixelcut, removebgvideo, report, studio
from conformance.client import Api
from conformance.host import Entry, FileHost, WebhookReceiver, is_loopback
from conformance.kit import Flow, Kit, Options, matches

FLOWS = {  # run in this order up to their first yield, then jobs are polled, then the rest of each
    "uploads": common.flow_uploads,
    "pixelcut.jobs": pixelcut.flow_jobs,
    "studio.jobs": studio.flow_jobs,
    "removebgvideo.jobs": removebgvideo.flow_jobs,
    "pixelcut.errors": pixelcut.flow_errors,
    "pixelcut.limits": pixelcut.flow_limits,
    "pixelcut.formats": pixelcut.flow_formats,
    "studio.errors": studio.flow_errors,
    "removebgvideo.drafts": removebgvideo.flow_drafts,
    "removebgvideo.errors": removebgvideo.flow_errors,
    "rate": removebgvideo.flow_rate,  # last: it spends the key's request budget
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m conformance", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the server's base URL, e.g. http://127.0.0.1:8080")
    p.add_argument(
        "--key",
        default=os.environ.get("CONFORMANCE_KEY", ""),
        help="an API key with credits for a few short jobs (default $CONFORMANCE_KEY: keeps it off the "
        "command line)",
    )
    p.add_argument(
        "--poor-key",
        default=os.environ.get("CONFORMANCE_POOR_KEY", ""),
        help="a key whose account cannot pay for a job, for the 403 cases (default $CONFORMANCE_POOR_KEY)",
    )
    p.add_argument("--sample", type=Path, help="a short clip with a person (also the expected size/length)")
    p.add_argument("--image", type=Path, help="a background image (uploaded for the image-background job)")
    p.add_argument("--video-url", default="", help="give the server this URL of the sample instead")
    p.add_argument("--image-url", default="", help="give the server this background image URL instead")
    p.add_argument(
        "--media-host",
        choices=("auto", "serve", "upload", "none"),
        default="auto",
        help="how the server gets the kit's files: serve on loopback (auto for a loopback BASE), "
        "upload them, or none (cases that need them are skipped)",
    )
    p.add_argument("--uploads-path", default="/v1/uploads", help="the upload route ('' : none)")
    p.add_argument(
        "--webhooks", choices=("auto", "on", "off"), default="auto", help="auto: only for loopback"
    )
    p.add_argument("--job-timeout", type=float, default=600.0, help="seconds for all jobs to end")
    p.add_argument(
        "--model", default="original", help="removebgvideo `model` of the jobs that run (default: the seeds')"
    )
    p.add_argument("--poll", type=float, default=1.0, help="least seconds between two polls of one job")
    p.add_argument(
        "--known-gap",
        action="append",
        default=[],
        help="a case name (or comma-separated names) whose failure is known: reported GAP, not FAIL",
    )
    p.add_argument("--only", default="", help="run only the flows whose names match this regex")
    p.add_argument("--json", type=Path, help="also write the results here as JSON")
    p.add_argument("--work", type=Path, help="keep downloads and generated clips here (default: a temp dir)")
    return p.parse_args(argv)


def run(opts: Options) -> Kit:
    loopback = is_loopback(opts.base)
    api = Api(opts.base, opts.key, trust_env=not loopback)
    kit = Kit(opts, api)
    serve = opts.media_host == "serve" or (opts.media_host == "auto" and loopback)
    if opts.media_host == "auto" and not loopback:
        opts.media_host = "upload" if opts.uploads_path else "none"
    if serve:
        kit.files = FileHost()
    if opts.webhooks == "on" or (opts.webhooks == "auto" and loopback):
        kit.hooks = WebhookReceiver()
    elif opts.webhooks == "auto":
        kit.webhook_skip_reason = "BASE is not loopback: the server cannot reach this machine's receiver"
    try:
        ctype = mimetypes.guess_type(opts.sample.name)[0] or "video/mp4"
        kit.source_url = opts.video_url or kit.host(opts.sample.name, Entry(ctype, path=opts.sample)) or ""
        if not kit.source_url:
            raise SystemExit(
                "the server cannot get the sample: give --video-url, or let the kit serve/upload it"
            )
        flows = [Flow(name, make(kit)) for name, make in FLOWS.items() if matches(opts.only, name)]
        for flow in flows:  # submit, quick cases
            flow.done = next(flow.steps, StopIteration) is StopIteration
        kit.wait_jobs()
        for flow in flows:  # results
            if not flow.done:
                for _ in flow.steps:
                    pass
    finally:
        if kit.files is not None:
            kit.files.close()
        if kit.hooks is not None:
            kit.hooks.close()
        api.close()
    return kit


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not args.key:
        print("--key (or $CONFORMANCE_KEY): an API key with credits is needed")
        return 2
    if args.sample is None or not args.sample.is_file():
        print("--sample: a local copy of the clip is needed (its size and length are the expectations)")
        return 2
    gaps = tuple(n.strip() for arg in args.known_gap for n in arg.split(",") if n.strip())
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        opts = Options(
            base=args.base,
            key=args.key,
            sample=args.sample.resolve(),
            image=args.image.resolve() if args.image else None,
            video_url=args.video_url,
            image_url=args.image_url,
            poor_key=args.poor_key,
            media_host=args.media_host,
            uploads_path=args.uploads_path,
            webhooks=args.webhooks,
            job_timeout_s=args.job_timeout,
            poll_s=args.poll,
            model=args.model,
            known_gaps=gaps,
            only=args.only,
            work=work,
        )
        t0 = time.monotonic()
        kit = run(opts)
    print(f"conformance: {opts.base}, {len(kit.jobs)} jobs, {time.monotonic() - t0:.0f} s")
    report.print_table(kit.results, sys.stdout)
    waited = kit.api.backoff
    print(f"429 answers waited out: {waited.waits_429} ({waited.waited_s:.1f} s); transport retries: "
          f"{waited.retries_transport}")  # fmt: skip
    for note in kit.notes:
        print(f"note: {note}")
    if args.json:
        report.write_json(kit.results, args.json)
    return 1 if report.failed(kit.results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
