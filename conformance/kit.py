"""The kit's machinery: options, cases and their results, submitted jobs and the one poll loop.

A flow (pixelcut.py, studio.py, removebgvideo.py, common.py) is a generator: it submits its jobs and runs
its quick cases, yields, and once every job of every flow has ended (or the deadline passed) it resumes to
check results. So all jobs run at the same time on the server while the kit polls them in one loop.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from conformance import media
from conformance.client import Api, Reply, error_code
from conformance.host import Entry, FileHost, WebhookReceiver
from conformance.report import FAIL, GAP, PASS, SKIP, Result
from conformance.seeds import Quote

TERMINAL = ("completed", "failed", "cancelled", "error")
POLL_SPACING_S = 0.125  # per pending job, between poll rounds
POLL_UNTIL = (*TERMINAL, "draft")  # a draft does not move until started: polling it longer is no use


@dataclass
class Options:
    base: str
    key: str
    sample: Path  # the clip submitted (served, uploaded, or the local copy of --video-url)
    image: Path | None = None  # a background image
    video_url: str = ""  # give the server this URL for the sample instead of serving/uploading it
    image_url: str = ""
    poor_key: str = ""  # a key whose account cannot pay for a job (403 cases)
    media_host: str = "auto"  # auto | serve | upload | none
    uploads_path: str = "/v1/uploads"  # "" : the server has no upload endpoint
    webhooks: str = "auto"  # auto (only for a loopback server) | on | off
    job_timeout_s: float = 600.0
    poll_s: float = 1.0
    model: str = "original"  # removebgvideo's `model` in the jobs that run (the seeds' default)
    known_gaps: tuple[str, ...] = ()
    only: str = ""  # regex on flow names
    work: Path = Path(".")


class CaseFailed(Exception):
    pass


class CaseSkipped(Exception):
    pass


class Case:
    def __init__(self, result: Result):
        self.result = result

    def got(self, text: str) -> None:
        self.result.got = text

    def expect(self, ok: bool, why: str | None = None) -> None:
        """Fail the case unless `ok`; `why` (what was seen) becomes its "got" when it fails."""
        if not ok:
            self.fail(why)

    def fail(self, why: str | None = None) -> NoReturn:
        if why is not None:
            self.result.got = why
        raise CaseFailed(self.result.got)

    def need_str(self, value: Any, why: str) -> str:
        """`value` when it is a non-empty string (an id, a URL); else the case fails with `why`."""
        if not isinstance(value, str) or not value:
            self.fail(why)
        return value

    def skip(self, reason: str) -> NoReturn:
        raise CaseSkipped(reason)


@dataclass
class Job:
    dialect: str
    id: str
    poll: str  # path or absolute URL of its status
    label: str
    status: str = ""
    body: Any = None  # the last status body
    result_url: str | None = None
    error: str | None = None
    polls: int = 0
    file: Path | None = None

    def describe(self) -> str:
        if self.status == "completed":
            return "completed"
        if self.status:
            return f"{self.status} {self.error or ''}".strip()
        return "no answer"


def status_of(dialect: str, body: Any) -> tuple[str, str | None, str | None]:
    """(status, result URL, error code) from a status body, in the field names each vendor documents or
    implies (with the common alternatives a client tolerates)."""
    if not isinstance(body, dict):
        return "", None, None
    view: dict[str, Any] = body
    if dialect == "studio" and isinstance(body.get("job"), dict):
        view = body["job"]
    result = view.get("result") if isinstance(view.get("result"), dict) else {}
    assert isinstance(result, dict)
    url = view.get("output_url") or view.get("result_url") or result.get("url") or result.get("output_url")
    return str(view.get("status") or ""), url, error_code(view)


class Kit:
    def __init__(self, opts: Options, api: Api):
        self.opts = opts
        self.api = api
        self.results: list[Result] = []
        self.jobs: list[Job] = []
        self.run_tag = uuid.uuid4().hex[:8]
        self.files: FileHost | None = None
        self.hooks: WebhookReceiver | None = None
        self.source: media.Info = media.inspect(opts.sample)
        self.source_url = ""
        self.image_url = ""
        self.uploaded: dict[str, dict[str, Any]] = {}  # name -> the upload's answer
        self.notes: list[str] = []
        self.webhook_skip_reason = "webhooks are off (--webhooks off)"
        self.extra: dict[str, Any] = {}  # what one flow leaves for a later case

    # --- cases ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def case(self, name: str, quotes: Quote | tuple[Quote, ...], want: str) -> Iterator[Case]:
        result = Result(name, quotes if isinstance(quotes, tuple) else (quotes,), want)
        self.results.append(result)
        t0 = time.monotonic()
        try:
            yield Case(result)
        except CaseSkipped as e:
            result.outcome, result.got = SKIP, str(e)
        except CaseFailed:
            result.outcome = FAIL
        except Exception as e:  # a crash in a case is that case's failure, not the run's
            result.outcome = FAIL
            result.got = f"{result.got} ({type(e).__name__}: {e})".strip()
        else:
            result.outcome = PASS
        result.seconds = time.monotonic() - t0
        if result.outcome == FAIL and name in self.opts.known_gaps:
            result.outcome = GAP

    # --- media the server can reach ----------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self.files is not None

    def host(self, name: str, entry: Entry) -> str | None:
        """A URL the server can fetch `entry` from: served on loopback, else uploaded; None if neither."""
        if self.files is not None:
            return self.files.add(name, entry, tag=self.run_tag)
        if self.opts.media_host == "upload" and self.opts.uploads_path:
            data = entry.path.read_bytes() if entry.path is not None else entry.data
            r = self.upload(name, data, entry.content_type)
            return self.upload_url(r) if r.status in (200, 201) else None
        return None

    def upload(self, name: str, data: bytes, content_type: str) -> Reply:
        r = self.api.post(self.opts.uploads_path, files={"file": (name, data, content_type)})
        if r.status in (200, 201) and isinstance(r.body, dict):
            self.uploaded[name] = r.body
        return r

    def upload_url_of(self, name: str) -> str | None:
        body = self.uploaded.get(name)
        return (body.get("url") or body.get("download_url") or body.get("file_url")) if body else None

    @staticmethod
    def upload_url(r: Reply) -> str | None:
        body = r.body if isinstance(r.body, dict) else {}
        return body.get("url") or body.get("download_url") or body.get("file_url")

    # --- jobs -------------------------------------------------------------------------------------------------

    def submit(self, dialect: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Reply:
        """POST a job, with a fresh Idempotency-Key as a careful client sends (a retry of this call then
        cannot make a second job); idempotent=False sends none."""
        headers = dict(kwargs.pop("headers", None) or {})
        if idempotent:
            headers.setdefault("Idempotency-Key", f"kit-{uuid.uuid4()}")
        return self.api.post(path, dialect=dialect, headers=headers, **kwargs)

    def track(self, dialect: str, job_id: str, poll: str, label: str) -> Job:
        job = Job(dialect, job_id, poll, label)
        self.jobs.append(job)
        return job

    def poll_once(self, job: Job) -> None:
        r = self.api.get(job.poll, dialect=job.dialect)
        job.polls += 1
        if r.status != 200:
            job.error = f"status read answered {r.short()}"
            return
        job.body = r.body
        job.status, job.result_url, job.error = status_of(job.dialect, r.body)

    def wait_jobs(self) -> None:
        deadline = time.monotonic() + self.opts.job_timeout_s
        pending = [j for j in self.jobs if j.status not in POLL_UNTIL]
        while pending:
            for job in pending:
                self.poll_once(job)
            pending = [j for j in pending if j.status not in POLL_UNTIL]
            if not pending or time.monotonic() > deadline:
                break
            # a round polls every pending job: spread them so polling stays near 8 requests/s, under a
            # usual per-key rate limit (a 429 would be waited out anyway, only slower)
            time.sleep(max(self.opts.poll_s, POLL_SPACING_S * len(pending)))
        for job in pending:
            self.notes.append(f"job {job.id} ({job.label}) still {job.status or '?'} at the deadline")

    def job(self, label: str) -> Job | None:
        """The job submitted under `label`, also when its submit case failed on the answer's shape."""
        return next((j for j in self.jobs if j.label == label), None)

    def outcome(self, name: str) -> str | None:
        return next((r.outcome for r in self.results if r.name == name), None)

    def result_file(self, job: Job | None, c: Case, after: str = "") -> tuple[Path, media.Info]:
        """The job's result, downloaded once and decoded; fails the case when there is none (skips it
        when the case `after`, which made the job, was skipped)."""
        if job is None and after and self.outcome(after) == SKIP:
            c.skip(f"{after} was skipped")
        c.expect(job is not None, "no job: its submit failed")
        assert job is not None
        c.expect(job.status == "completed", f"job {job.describe()}")
        if job.file is None:
            c.expect(bool(job.result_url), "completed without a result URL")
            assert job.result_url is not None
            dest = self.opts.work / f"{job.label}-{job.id}.bin"
            self.api.download(job.result_url, dest)
            job.file = dest
        return job.file, media.inspect(job.file)

    # --- common checks ---------------------------------------------------------------------------------------

    def same_picture(self, info: media.Info, c: Case, duration_s: float | None = None) -> str:
        """Size equal to the source's; duration within a frame (and 0.1 s) of `duration_s` (the source's)."""
        want = self.source.duration_s if duration_s is None else duration_s
        got = info.describe()
        c.got(got)
        c.expect((info.width, info.height) == (self.source.width, self.source.height), f"{got}; size differs")
        c.expect(abs(info.duration_s - want) <= info.frame_s + 0.1, f"{got}; wanted {want:.2f} s")
        return got


def want_error(c: Case, r: Reply, status: int, codes: tuple[str, ...] = (), *, shape: str = "any") -> None:
    """The reply is `status` with one of `codes` (any code when empty) in the dialect's error shape."""
    code = error_code(r.body)
    c.got(r.short())
    c.expect(r.status == status, f"{r.short()} (wanted {status})")
    c.expect(code is not None, f"{r.short()}: no error code in the body")
    if codes:
        c.expect(code in codes)
    if shape == "pixelcut":
        body = r.body
        c.expect(
            isinstance(body, dict) and isinstance(body.get("error"), str),
            f"{r.short()}: body is not {{'error': str, 'error_code': str}}",
        )


def matches(pattern: str, name: str) -> bool:
    return not pattern or re.search(pattern, name) is not None


@dataclass
class Flow:
    name: str
    steps: Iterator[None]  # the generator
    done: bool = False
