"""Job records, kept in the JetStream key-value bucket `vbg_jobs` (key = job id, value = JSON object).

Why JetStream KV and not a database: the records persist in the same JetStream file store the work queue
already uses (one server to run, back up and restore, no second database to operate); every write carries
a revision, so `update` is a compare-and-set and two workers never lose each other's changes; and a key
can be watched, so a gateway can follow a job without polling. The cost: no secondary indexes, so the
one index kept, by owner, is written by hand: an entry `owner.<owner>.<job id>` beside each record, so an
owner's listing (and `GET /v1/usage`) reads that owner's records only. Records and entries expire with
the bucket's max age (`job_retention_s`, 7 days after their last change).

The record is `services.common.record.Job`, stored as its JSON; records written by older versions load
through the same model (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from datetime import UTC, datetime
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from services.common.bus import NATS_DOWN
from services.common.record import TERMINAL, Job, Status
from videobg import nats_subjects
from videobg.errors import Conflict, NotFound, Transient
from videobg.object_keys import check_id

__all__ = ["TERMINAL", "Job", "JobStore", "Status", "iter_docs", "nats_errors", "now_iso"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@contextlib.contextmanager
def nats_errors(what: str, store: str = "job store") -> Iterator[None]:
    """NATS being away, inside the block, becomes Transient ("<store> unavailable (<what>)")."""
    try:
        yield
    except NATS_DOWN as e:
        raise Transient(f"The {store} is unavailable", detail=f"{what}: {e!r}") from e


async def iter_docs(
    js: JetStreamContext, bucket: str, prefix: str = "", *, timeout_s: float = 30.0
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Every live document of `bucket` whose key starts with `prefix` ('key.', 'account.'; '' for all).

    Not through nats-py's end-of-values marker (the None a watcher yields first when the server
    reported nothing pending): that report races with delivery, so on a busy bucket the marker can come
    before every value and a listing reads as empty. Instead: ask the stream whether any key matches at
    all, then read the last value of each until the one with nothing pending after it."""
    filter_ = f"$KV.{bucket}.{prefix}>" if prefix else f"$KV.{bucket}.>"
    with nats_errors(f"list {bucket}"):
        try:
            info = await js.stream_info(f"KV_{bucket}", subjects_filter=filter_)
        except nats.js.errors.NotFoundError:
            return
        if not info.state.subjects:
            return
        watcher = await (await js.key_value(bucket)).watch(f"{prefix}>" if prefix else ">")
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                entry = await watcher.updates(timeout=timeout_s)
                if entry is None:  # the racy end-of-values marker: keep reading (see above)
                    continue
                if entry.operation not in (KV_DEL, KV_PURGE) and entry.value:
                    yield entry.key, json.loads(entry.value)
                if entry.delta == 0:
                    return
    except TimeoutError as e:
        raise Transient(f"listing {bucket}/{prefix}* timed out after {timeout_s:g} s") from e
    finally:
        await watcher.stop()


class _Unchanged(Exception):
    """Raised inside an update function to leave the record as it is."""


class JobStore:
    def __init__(
        self, js: JetStreamContext, bucket: str = nats_subjects.JOBS_BUCKET, *, max_attempts: int = 50
    ):
        self._js = js
        self._bucket_name = bucket
        self._kv: KeyValue | None = None
        self.max_attempts = max_attempts

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            try:
                with nats_errors("open bucket"):
                    self._kv = await self._js.key_value(self._bucket_name)
            except nats.js.errors.BucketNotFoundError as e:
                raise Transient(f"KV bucket {self._bucket_name} missing: run bus.ensure_streams") from e
        return self._kv

    async def create(self, job: Job) -> int:
        """Store a new record. Fills the timestamps when absent. Raises Conflict if the id exists.
        Returns the revision."""
        job_id = check_id("job id", job.id)
        record = job.model_copy(deep=True)
        record.created = record.created or now_iso()
        record.updated = record.created
        kv = await self._bucket()
        try:
            with nats_errors(f"create {job_id}"):
                # the owner's index entry first: one pointing at a record that never came is skipped by
                # `list`, while a record missing from its owner's index would be invisible to them
                await kv.put(owner_index_key(record.owner, job_id), b"{}")
                return await kv.create(job_id, record.to_json())
        except nats.js.errors.KeyWrongLastSequenceError as e:
            raise Conflict(f"job {job_id} already exists") from e

    async def get_with_revision(self, job_id: str) -> tuple[Job, int]:
        kv = await self._bucket()
        try:
            with nats_errors(f"get {job_id}"):
                entry = await kv.get(check_id("job id", job_id))
        except nats.js.errors.KeyNotFoundError as e:
            raise NotFound(f"job {job_id} not found") from e
        return Job.from_json(entry.value or b"{}"), entry.revision or 0

    async def get(self, job_id: str) -> Job:
        return (await self.get_with_revision(job_id))[0]

    async def update(self, job_id: str, fn: Callable[[Job], Job | None]) -> Job:
        """Read-modify-write with compare-and-set: `fn` gets a copy of the current record, changes it in
        place and returns it (or None for no change). If another writer got in between, re-read and call
        `fn` again, so `fn` must be a pure function of the record. Returns the record as stored."""
        kv = await self._bucket()
        for attempt in range(1, self.max_attempts + 1):
            current, revision = await self.get_with_revision(job_id)
            try:
                new = fn(current.model_copy(deep=True))
            except _Unchanged:
                return current
            if new is None or new == current:
                return current
            if new.id != job_id:
                raise ValueError("an update may not change the job id")
            new.updated = now_iso()
            try:
                with nats_errors(f"update {job_id}"):
                    await kv.update(job_id, new.to_json(), last=revision)
                return new
            except nats.js.errors.KeyWrongLastSequenceError:
                # Lost the race: back off a little (jittered, so contenders spread out) and re-read.
                await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise Transient(f"job {job_id}: update kept conflicting after {self.max_attempts} attempts")

    async def transition(
        self, job_id: str, from_states: Collection[str], to_state: Status, **fields: Any
    ) -> bool:
        """Move the job to `to_state` (and set `fields`, record attributes) only if its status is one of
        `from_states`. True if this call made the change; False if the job was already in `to_state`
        (someone else did it: e.g. a redelivered message completing a job twice) or is in a state not
        allowed to move."""
        to_state = Status(to_state)
        changed = False

        def step(job: Job) -> Job:
            nonlocal changed
            changed = False
            if job.status == to_state or job.status not in from_states:
                raise _Unchanged
            changed = True
            for name, value in fields.items():
                setattr(job, name, value)
            job.status = to_state
            return job

        await self.update(job_id, step)
        return changed

    async def delete(self, job_id: str) -> None:
        kv = await self._bucket()
        try:
            owner = (await self.get(job_id)).owner
        except NotFound:
            return
        with nats_errors(f"delete {job_id}"):
            await kv.delete(check_id("job id", job_id))
            await kv.delete(owner_index_key(owner, job_id))

    async def list(self, owner: str | None = None, limit: int = 100) -> list[Job]:
        """Newest first (by `created`). One owner's jobs are found through the owner's index entries and
        read one by one, so listing them never reads another owner's record; all jobs (owner None, the
        operator's view and the stall sweep) are every live record."""
        if owner is None:
            jobs = [
                Job.model_validate(doc)
                async for key, doc in iter_docs(self._js, self._bucket_name)
                if "." not in key  # not an index entry
            ]
        else:
            prefix = owner_index_key(owner, "")
            ids = [key[len(prefix) :] async for key, _ in iter_docs(self._js, self._bucket_name, prefix)]
            found = await asyncio.gather(*(self._get_or_none(i) for i in ids))
            jobs = [j for j in found if j is not None and j.owner == owner]  # the record decides
        jobs.sort(key=lambda j: (j.created, j.id), reverse=True)
        return jobs[:limit]

    async def _get_or_none(self, job_id: str) -> Job | None:
        try:
            return await self.get(job_id)
        except (NotFound, ValueError):  # expired or deleted since its index entry was written
            return None


_PLAIN_OWNER = re.compile(r"[A-Za-z0-9_-]{1,128}")


def owner_index_key(owner: str, job_id: str) -> str:
    """`owner.<owner token>.<job id>`, in the jobs bucket itself (it expires with the records). A plain
    owner name is its own token ("p" + name); any other is hex-encoded ("h" + hex), so no owner's
    entries can fall under another's prefix."""
    token = "p" + owner if _PLAIN_OWNER.fullmatch(owner) else "h" + owner.encode().hex()
    return f"owner.{token}.{job_id}"
