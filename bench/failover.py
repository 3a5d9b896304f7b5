"""The failover drill: a batch through the cluster stack (3 NATS nodes in one JetStream cluster, SeaweedFS
with two volume servers and replication 001) while, one at a time, the NATS node that leads the meta group
is killed with SIGKILL and restarted, then the node that leads the job records' stream, then one volume
server is stopped and restarted.

    .venv/bin/python bench/drills.py failover            # 40 jobs, three dialects, light + human
    .venv/bin/python bench/drills.py failover --quick    # 8 jobs, light (tests/e2e/test_failover.py runs 6)

What must hold (each miss is a problem and the drill FAILs): every job that got a 202 completes exactly
once (one `completed` event, one result object) and its result downloads and decodes to the source's size
and frame count; every API key is still there and still works; each owner's credit account has charged
exactly the sum of its completed jobs and holds no reservation; a submission made while a server is down
gets 202 or 503, never anything else, and never after more than `SLOW_SUBMIT_S`.

One NATS node is down at a time, never two: three nodes keep a quorum (two) through the loss of any one,
which is what the cluster is for; losing two stops writes until one returns, by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from nats.js.api import DeliverPolicy

from devstack import procs
from devstack.stack import FileServer, Stack, download
from services.common import bus
from services.common.jobstore import JobStore
from services.gateway.admin import create_key
from services.gateway.api_keys import KeyStore
from services.gateway.credits import Ledger
from tests.mediacheck import summarize
from videobg import nats_subjects
from videobg.media.probe import probe

T = TypeVar("T")
PROBE_AFTER_S = 5.0  # probing goes on this long after a fault's server is back
SLOW_SUBMIT_S = 10.0  # a submission during a failover answering later than this is a problem
REPLICATED = (
    nats_subjects.WORK_STREAM,
    nats_subjects.EVENTS_STREAM,
    f"KV_{nats_subjects.JOBS_BUCKET}",
    f"KV_{nats_subjects.KEYS_BUCKET}",
)
DIALECTS = ("pixelcut", "studio", "removebgvideo")
# a job created: 202 (Pixelcut, studio-background), 200 (removebgvideo's "Process Video" contract)
ACCEPTED = (200, 202)


@dataclass
class Plan:
    jobs: int = 8
    clips: tuple[str, ...] = ("people/androidx_bt601.mov",)
    dialects: tuple[str, ...] = DIALECTS  # cycled over the batch
    models: tuple[str, ...] = ("light",)  # cycled over the removebgvideo jobs (the others: the default)
    owners: int = 2
    credits: float = 10_000.0
    down_s: float = 5.0  # how long each server stays down
    probe_every_s: float = 0.5  # a submission this often while the faults run
    # before fault k of n, wait until k/(n+1) of the batch completed (the faults land early, middle and
    # late in the batch); False: all three once the first job is under way
    spread_faults: bool = False
    deadline_s: float = 600.0


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Submitted:
    job_id: str
    owner: str
    dialect: str
    clip: str
    t: float


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q / 100 * len(s)))) - 1] if s else float("nan")


class FailoverDrill:
    def __init__(self, stack: Stack, files: FileServer, media: Path, plan: Plan, log: Callable[[str], None]):
        self.stack, self.files, self.media, self.plan, self.log = stack, files, media, plan, log
        self.cluster = stack.nats_cluster
        self.report = Report()
        self.keys: dict[str, str] = {}  # owner -> API key
        self.key_ids: dict[str, str] = {}
        self.accepted: list[Submitted] = []
        self.probes: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.end = self.t0 + plan.deadline_s
        self._stop_probing = threading.Event()
        # the drill's own short connections: their connects and closes are not news
        logging.getLogger(bus.__name__).setLevel(logging.ERROR)

    # --- plumbing ---------------------------------------------------------------------------------------

    def nats(self, fn: Callable[[Any], Awaitable[T]], timeout_s: float = 60.0) -> T:
        """Run `fn(js)` on a fresh connection to any live node (the drill's own, so none of its state
        lives through a failover)."""

        async def run() -> T:
            nc = await bus.connect(self.cluster.url, name="vbg-drill")
            try:
                return await fn(nc.jetstream())
            finally:
                await nc.close()

        return asyncio.run(asyncio.wait_for(run(), timeout_s))

    def problem(self, text: str) -> None:
        self.report.problems.append(text)
        self.log(f"   problem: {text}")

    def wait(self, what: str, pred: Callable[[], bool], timeout_s: float, poll_s: float = 0.2) -> float:
        """Seconds until `pred()`; a problem (and -1) past the timeout or the drill's deadline."""
        t = time.monotonic()
        limit = min(t + timeout_s, self.end)
        while True:
            try:
                if pred():
                    return time.monotonic() - t
            except Exception:  # a server down: the condition is not met yet
                pass
            if time.monotonic() > limit:
                self.problem(f"{what}: not after {timeout_s:.0f} s")
                return -1.0
            time.sleep(poll_s)

    def http(self, owner: str, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.url,
            trust_env=False,
            timeout=timeout_s,
            headers={"X-API-Key": self.keys[owner]},
        )

    # --- set-up ---------------------------------------------------------------------------------------------

    def make_keys(self) -> None:
        async def make(js: Any) -> dict[str, dict]:
            return {
                f"drill{i}": await create_key(js, f"drill{i}", self.plan.credits, note="failover drill")
                for i in range(self.plan.owners)
            }

        for owner, made in self.nats(make).items():
            self.keys[owner], self.key_ids[owner] = made["key"], made["id"]

    def body(self, dialect: str, clip: str, i: int) -> tuple[str, dict[str, Any]]:
        url = self.files.url_for(self.media / clip)
        if dialect == "pixelcut":
            return "/v1/video/remove-background", {
                "video_url": url, "background_color": "#00FF00", "output_format": "mp4_h264",
            }  # fmt: skip
        if dialect == "studio":
            return "/v1/proxy/studio-background", {"videoUrl": url, "back_ground": "#1E90FF"}
        model = self.plan.models[i % len(self.plan.models)]
        return "/v1/jobs", {"video_url": url, "model": model, "output_format": "mp4_h264"}

    def submit(
        self, i: int, *, timeout_s: float = 30.0, key: str = ""
    ) -> tuple[int | None, Submitted | None, float, str]:
        """One submission: (HTTP status or None, the job if accepted, seconds, error text). `key`: the
        Idempotency-Key (a new one when empty)."""
        p = self.plan
        owner, dialect = f"drill{i % p.owners}", p.dialects[i % len(p.dialects)]
        clip = p.clips[i % len(p.clips)]
        path, body = self.body(dialect, clip, i)
        # a key of its own per submission: each is a new job (the gateway's implicit idempotency would
        # fold identical bodies into one), and a client retrying it would get that same job back
        headers = {"Idempotency-Key": key or f"drill-{uuid.uuid4()}"}
        t = time.monotonic()
        try:
            with self.http(owner, timeout_s) as c:
                r = c.post(path, json=body, headers=headers)
        except httpx.HTTPError as e:
            return None, None, time.monotonic() - t, repr(e)
        took = time.monotonic() - t
        if r.status_code not in ACCEPTED:
            return r.status_code, None, took, r.text[:200]
        doc = r.json()
        job_id = doc.get("job_id") or doc.get("id") or (doc.get("job") or {}).get("id")
        return r.status_code, Submitted(str(job_id), owner, dialect, clip, t), took, ""

    # --- the faults ---------------------------------------------------------------------------------------

    def probe_loop(self) -> None:
        """Submit a job every probe_every_s while the faults run: what a client sees during failover."""
        i = 10_000 + len(self.probes)
        while not self._stop_probing.is_set():
            i += 1
            key = f"drill-{uuid.uuid4()}"
            code, job, took, err = self.submit(i, timeout_s=2 * SLOW_SUBMIT_S, key=key)
            self.probes.append({"t": time.monotonic(), "http": code, "s": took, "error": err})
            if job is None and code in (503, None):
                # as a client should: once more with the same key, which returns the job if the first
                # try made one after all, and makes it if not
                time.sleep(1.0)
                code, job, took, err = self.submit(i, timeout_s=2 * SLOW_SUBMIT_S, key=key)
                self.probes.append(
                    {"t": time.monotonic(), "http": code, "s": took, "error": err, "retry": True}
                )
            if job is not None:
                self.accepted.append(job)
            self._stop_probing.wait(self.plan.probe_every_s)

    def current(self) -> bool:
        return self.nats(lambda js: bus.replicas_current(js, REPLICATED), 15.0)

    def stream_leader(self, stream: str) -> str:
        async def leader(js: Any) -> str:
            info = await js.stream_info(stream)
            return str(info.cluster.leader if info.cluster else "")

        return self.nats(leader, 15.0)

    def kill_node(self, label: str, name: str) -> dict[str, Any]:
        i = self.cluster.index(name)
        self.wait(f"{label}: replicas current before the kill", self.current, 60)
        t_kill = time.monotonic()
        self.cluster.kill(i, signal.SIGKILL)
        self.log(f"   kill -9 {name} ({label}) at +{t_kill - self.t0:.1f} s")
        elected = self.wait(
            f"{label}: a new meta leader",
            lambda: self.cluster.meta_leader() not in ("", name),
            30,
        )
        time.sleep(max(0.0, self.plan.down_s - (time.monotonic() - t_kill)))
        t_up = time.monotonic()
        self.cluster.restart(i)
        ready = time.monotonic() - t_up
        caught_up = self.wait(f"{label}: {name} caught up", self.current, 90)
        self.log(f"   {name} back in {ready:.1f} s, replicas current {caught_up:.1f} s later")
        return {
            "fault": label, "node": name, "t_kill": t_kill, "t_back": time.monotonic(),
            "meta_election_s": round(elected, 2), "restart_ready_s": round(ready, 2),
            "caught_up_s": round(caught_up, 2),
        }  # fmt: skip

    def stop_volume(self) -> dict[str, Any]:
        old = self.stack.volumes[0]
        t_kill = time.monotonic()
        old.stop()
        self.log(f"   volume server (pid {old.pid}) stopped at +{t_kill - self.t0:.1f} s")
        reads = self.read_results_now()
        time.sleep(max(0.0, self.plan.down_s - (time.monotonic() - t_kill)))
        t_up = time.monotonic()
        assert self.stack.s3 is not None
        self.stack.volumes[0] = procs.start_weed_volume(
            old.data_dir, self.stack.s3, old.ports["volume"], old.ports["volume_grpc"]
        )
        ready = time.monotonic() - t_up
        self.log(f"   volume server back (pid {self.stack.volumes[0].pid}) in {ready:.1f} s")
        return {"fault": "volume server stopped", "t_kill": t_kill, "t_back": time.monotonic(),
                "restart_ready_s": round(ready, 2), "results_read_while_down": reads}  # fmt: skip

    def read_results_now(self) -> str:
        """Download every result that exists now, with one volume server down: each blob has its second
        copy on the other server (replication 001), so each must read."""
        got = failed = 0
        for job in list(self.accepted):
            with contextlib.suppress(httpx.HTTPError):
                url = self.record(job).get("result_url")
                if not url:
                    continue
                try:
                    with httpx.Client(trust_env=False, timeout=15.0) as c:
                        r = c.get(url)
                    ok = r.status_code == 200 and len(r.content) > 0
                except httpx.HTTPError:
                    ok = False
                got, failed = got + ok, failed + (not ok)
        if failed or not got:
            self.problem(f"with a volume server down: {got} result(s) read, {failed} failed")
        return f"{got}/{got + failed}"

    # --- checks -----------------------------------------------------------------------------------------

    def record(self, job: Submitted) -> dict[str, Any]:
        with self.http(job.owner, 15.0) as c:
            r = c.get(f"/internal/jobs/{job.job_id}")
        if r.status_code != 200:
            return {"status": f"http {r.status_code}"}
        return r.json()

    def wait_terminal(self) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        said = time.monotonic()
        while len(done) < len(self.accepted) and time.monotonic() < self.end:
            if time.monotonic() - said > 15:
                said = time.monotonic()
                self.log(f"   {len(done)}/{len(self.accepted)} jobs finished")
            for job in self.accepted:
                if job.job_id in done:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    rec = self.record(job)
                    if rec.get("status") in ("completed", "failed", "cancelled"):
                        done[job.job_id] = rec
            time.sleep(0.5)
        for job in self.accepted:
            if job.job_id not in done:
                self.problem(f"job {job.job_id} ({job.dialect}) not finished by the deadline")
        return done

    def events_and_results(self) -> tuple[dict[str, int], dict[str, int]]:
        """Per job: how many `completed` events its subject holds, and how many result objects exist."""

        async def completed_events(js: Any) -> dict[str, int]:
            """One ordered consumer over the whole events stream, read to its end."""
            out: dict[str, int] = {}
            sub = await js.subscribe(
                nats_subjects.EVENTS_WILDCARD, stream=nats_subjects.EVENTS_STREAM, ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )  # fmt: skip
            try:
                while True:
                    msg = await sub.next_msg(timeout=5.0)
                    if b'"status":"completed"' in msg.data:
                        job_id = msg.subject.rsplit(".", 1)[-1]
                        out[job_id] = out.get(job_id, 0) + 1
                    if msg.metadata.num_pending == 0:
                        return out
            finally:
                await sub.unsubscribe()

        events = self.nats(completed_events, 120.0)
        results: dict[str, int] = {}
        for key in self.stack.objects().list_keys("jobs/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2].startswith("result"):
                results[parts[1]] = results.get(parts[1], 0) + 1
        return events, results

    def check_jobs(self, records: dict[str, dict[str, Any]]) -> dict[str, int]:
        events, results = self.events_and_results()
        infos: dict[str, Any] = {}
        counts = {"accepted": len(self.accepted), "completed": 0, "lost": 0, "duplicated": 0, "failed": 0}
        for job in self.accepted:
            rec = records.get(job.job_id)
            if rec is None or rec.get("status", "").startswith("http"):
                counts["lost"] += 1
                self.problem(f"job {job.job_id} accepted with 202 but not found: {rec}")
                continue
            if rec["status"] != "completed":
                counts["failed"] += 1
                self.problem(f"job {job.job_id}: {rec['status']} {rec.get('error_code')}: {rec.get('error')}")
                continue
            counts["completed"] += 1
            if events.get(job.job_id, 0) != 1 or results.get(job.job_id, 0) != 1:
                counts["duplicated"] += 1
                self.problem(
                    f"job {job.job_id}: {events.get(job.job_id, 0)} completed events, "
                    f"{results.get(job.job_id, 0)} result objects"
                )
            self.check_result(job, rec, infos)
        return counts

    def check_result(self, job: Submitted, rec: dict[str, Any], infos: dict[str, Any]) -> None:
        if job.clip not in infos:
            infos[job.clip] = probe(self.media / job.clip)
        info = infos[job.clip]
        url = rec.get("result_url")
        if not url:
            self.problem(f"job {job.job_id}: completed without a result_url")
            return
        try:
            dest = (
                self.stack.data_dir / "results" / f"{job.job_id}{Path(rec.get('result_key', '.mp4')).suffix}"
            )
            got = summarize(download(url, dest))
        except Exception as e:
            self.problem(f"job {job.job_id}: result does not download or decode: {e!r}")
            return
        sizes = ((info.width, info.height), (info.width + info.width % 2, info.height + info.height % 2))
        if (got.width, got.height) not in sizes or got.frames != info.frame_count:
            self.problem(
                f"job {job.job_id}: result {got.width}x{got.height} {got.frames}f, source "
                f"{info.width}x{info.height} {info.frame_count}f"
            )

    def check_credits(self, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Each owner: used == the sum charged on its jobs' records, balance == granted - used, and no
        reservation left (settling runs on job events and in the gateway's sweep; /v1/usage settles the
        caller's first). A job of a drill owner that no client was given (its submit refused) must not
        have run and been charged."""
        for owner in self.keys:
            with self.http(owner) as c:
                c.get("/v1/usage")
        accepted = {j.job_id for j in self.accepted}
        charged: dict[str, int] = dict.fromkeys(self.keys, 0)
        for owner in self.keys:
            for job in self.nats(functools.partial(_owner_jobs, owner=owner), 60.0):
                if job.billing is not None and job.billing.state == "charged":
                    charged[owner] += int(job.billing.charged_milli or 0)
                if job.id in accepted:
                    continue
                self.report.figures.setdefault("records_of_refused_submits", []).append(str(job.status))
                if job.billing is not None and job.billing.state == "charged":
                    self.problem(f"job {job.id} of {owner} ran and was charged though its submit was refused")

        def accounts() -> dict[str, Any]:
            return self.nats(lambda js: _accounts(js, list(self.keys)), 30.0)

        self.wait(
            "credit reservations settled",
            lambda: all(a.reservations == 0 for a in accounts().values()),
            90,
            1.0,
        )
        out = {}
        granted = round(self.plan.credits * 1000)
        for owner, a in accounts().items():
            out[owner] = {"used_milli": a.used_milli, "charged_on_jobs_milli": charged[owner],
                          "balance_milli": a.balance_milli, "open_reservations": a.reservations}  # fmt: skip
            if a.used_milli != charged[owner] or a.balance_milli != granted - charged[owner]:
                self.problem(f"credits of {owner}: {out[owner]} (granted {granted})")
            if charged[owner] == 0:
                self.problem(f"credits of {owner}: nothing charged for its completed jobs")
        return out

    def check_keys(self) -> dict[str, Any]:
        stored = {k.id: k for k in self.nats(lambda js: KeyStore(js).list(), 30.0)}
        missing = [i for i in self.key_ids.values() if i not in stored or stored[i].revoked]
        working = 0
        for owner in self.keys:
            with self.http(owner) as c:
                working += c.get("/v1/usage").status_code == 200
        if missing or working != len(self.keys):
            self.problem(f"API keys: missing or revoked {missing}, {working}/{len(self.keys)} accepted")
        return {"created": len(self.key_ids), "present": len(self.key_ids) - len(missing), "working": working}

    # --- the drill ------------------------------------------------------------------------------------------

    def run(self) -> Report:
        p, fig = self.plan, self.report.figures
        self.make_keys()
        for i in range(p.jobs):
            code, job, _, err = self.submit(i)
            if job is None:
                self.problem(f"submission {i} before any fault refused: {code} {err}")
            else:
                self.accepted.append(job)
        batch = list(self.accepted)
        self.log(f"   {len(batch)} jobs submitted ({', '.join(sorted({j.dialect for j in batch}))})")

        def mid_batch() -> bool:
            return any(self.record(j).get("status") in ("processing", "completed") for j in batch)

        self.wait("mid-batch", mid_batch, 120)
        faults = []
        self.until_done(batch, 1 / 4)
        faults.append(self.probing(lambda: self.kill_node("meta leader", self.cluster.meta_leader())))
        self.until_done(batch, 2 / 4)
        leader = self.stream_leader(f"KV_{nats_subjects.JOBS_BUCKET}")
        faults.append(
            self.probing(lambda: self.kill_node(f"leader of KV_{nats_subjects.JOBS_BUCKET}", leader))
        )
        self.until_done(batch, 3 / 4)
        faults.append(self.probing(self.stop_volume))
        ids = [j.job_id for j in self.accepted]
        if len(set(ids)) != len(ids):
            self.problem(
                f"{len(ids) - len(set(ids))} submission(s) with a key of their own got another's job"
            )
        self.log(f"   {len(self.probes)} submissions during the faults: {self.probe_figures(check=False)}")
        records = self.wait_terminal()
        fig["jobs"] = self.check_jobs(records)
        fig["faults"] = [self.client_view(f) for f in faults]
        fig["submits_during_failover"] = self.probe_figures()
        fig["credits"] = self.check_credits(records)
        fig["api_keys"] = self.check_keys()
        fig["all_done_s"] = round(time.monotonic() - self.t0, 1)
        return self.report

    def probing(self, fault: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `fault` (down, wait, back up) with a client submitting every probe_every_s from a second
        before it until PROBE_AFTER_S after it: what a client sees of that failover."""
        self._stop_probing.clear()
        prober = threading.Thread(target=self.probe_loop, name="drill-probe", daemon=True)
        prober.start()
        try:
            time.sleep(1.0)
            return fault()
        finally:
            time.sleep(PROBE_AFTER_S)
            self._stop_probing.set()
            prober.join(3 * SLOW_SUBMIT_S)

    def until_done(self, batch: list[Submitted], fraction: float) -> None:
        """With spread_faults: wait until `fraction` of the batch completed (probing goes on)."""
        if not self.plan.spread_faults:
            return
        want = math.ceil(fraction * len(batch))

        def enough() -> bool:
            return sum(self.record(j).get("status") == "completed" for j in batch) >= want

        self.wait(f"{want} of the batch completed", enough, self.end - time.monotonic(), poll_s=1.0)
        self.log(f"   {want}/{len(batch)} of the batch completed at +{time.monotonic() - self.t0:.1f} s")

    def client_view(self, fault: dict[str, Any]) -> dict[str, Any]:
        """What the probing client saw around one fault: submissions refused (HTTP or no answer) after the
        kill, and the failover time, from the first refusal to the next 202 (0 when none was refused)."""
        t_kill, t_back = fault.pop("t_kill"), fault.pop("t_back")
        after = [x for x in self.probes if t_kill <= x["t"] - x["s"] <= t_back + PROBE_AFTER_S]
        refused = [x for x in after if x["http"] not in ACCEPTED]
        outage = 0.0
        if refused:
            first = refused[0]["t"] - refused[0]["s"]
            ok = [x for x in self.probes if x["http"] in ACCEPTED and x["t"] - x["s"] > first]
            outage = (ok[0]["t"] - first) if ok else float("nan")
        return {**fault, "probes": len(after), "refused": len(refused), "client_failover_s": round(outage, 2)}

    def probe_figures(self, *, check: bool = True) -> dict[str, Any]:
        lat = [x["s"] for x in self.probes]
        codes: dict[str, int] = {}
        for x in self.probes:
            codes[str(x["http"])] = codes.get(str(x["http"]), 0) + 1
        bad = [x for x in self.probes if x["http"] not in (*ACCEPTED, 503)]
        slow = [x for x in self.probes if x["s"] > SLOW_SUBMIT_S]
        if bad and check:
            self.problem(f"{len(bad)} submission(s) during failover neither accepted nor 503: {bad[:3]}")
        if slow and check:
            self.problem(f"{len(slow)} submission(s) during failover took over {SLOW_SUBMIT_S:g} s")
        return {
            "submissions": len(self.probes), "answers": codes,
            "p50_s": round(pct(lat, 50), 3), "p99_s": round(pct(lat, 99), 3), "max_s": round(max(lat, default=0), 3),
        }  # fmt: skip


async def _owner_jobs(js: Any, owner: str) -> list[Any]:
    return await JobStore(js).list(owner=owner, limit=100_000)


async def _accounts(js: Any, owners: list[str]) -> dict[str, Any]:
    ledger = Ledger(js)
    return {o: await ledger.account(o) for o in owners}


def run(
    stack: Stack, files: FileServer, media: Path, plan: Plan, log: Callable[[str], None] = print
) -> Report:
    return FailoverDrill(stack, files, media, plan, log).run()
