"""NATS JetStream names shared by every service: streams, subjects, durable consumers, the KV bucket.

Work (stream VBG_WORK, work-queue retention: a message is removed once acked, and each subject has
exactly one durable pull consumer, shared by all replicas of that stage):

    vbg.work.ingest   -> consumer "ingest"    fetch/copy the input, probe it, publish segment work
    vbg.work.segment  -> consumer "segment"   run the matting model, write matte chunks
    vbg.work.encode   -> consumer "encode"    composite + encode, write the result

Events (stream VBG_EVENTS, limits retention, kept about a day): `vbg.events.{job_id}` carries progress and
state changes of one job, in order, so a watcher can replay a job from its start and then follow it.

Job records live in the KV bucket `vbg_jobs` (key = job id); see services/common/jobstore.py. API keys and
credit accounts live in `vbg_keys`. Both streams and both buckets carry the same replica count
(services/common/bus.py `ensure_streams`).
Names only: no transport library is imported here (this module is part of the core package).
"""

from __future__ import annotations

WORK_STREAM = "VBG_WORK"
WORK_INGEST = "vbg.work.ingest"
WORK_SEGMENT = "vbg.work.segment"
WORK_ENCODE = "vbg.work.encode"
WORK_SUBJECTS: tuple[str, ...] = (WORK_INGEST, WORK_SEGMENT, WORK_ENCODE)

# durable pull consumer per work subject
CONSUMER_INGEST = "ingest"
CONSUMER_SEGMENT = "segment"
CONSUMER_ENCODE = "encode"
CONSUMERS: dict[str, str] = {
    WORK_INGEST: CONSUMER_INGEST,
    WORK_SEGMENT: CONSUMER_SEGMENT,
    WORK_ENCODE: CONSUMER_ENCODE,
}

EVENTS_STREAM = "VBG_EVENTS"
EVENTS_PREFIX = "vbg.events"
EVENTS_WILDCARD = f"{EVENTS_PREFIX}.*"
EVENTS_MAX_AGE_S = 24 * 3600.0

JOBS_BUCKET = "vbg_jobs"
# Job records (and their per-owner index entries, `owner.<owner>.<job id>` in the same bucket) expire this
# long after their last change: JetStream drops them (the bucket's max age). VBG_JOB_RETENTION_S.
JOBS_MAX_AGE_S = 7 * 24 * 3600.0
KEYS_BUCKET = "vbg_keys"  # API keys and credit accounts (services/gateway/api_keys.py, credits.py)


def events_subject(job_id: str) -> str:
    """Subject of one job's events. Job ids are single NATS tokens: no '.', '*', '>' or whitespace."""
    if not job_id or any(c in job_id for c in ".*> \t\r\n"):
        raise ValueError(f"job id {job_id!r} is not a single NATS subject token")
    return f"{EVENTS_PREFIX}.{job_id}"
