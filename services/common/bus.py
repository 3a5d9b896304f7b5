"""NATS JetStream plumbing shared by the stage services: streams, work queue, workers, job events.

Work flows through the work-queue stream VBG_WORK (names in `videobg.nats_subjects`): a stage publishes with a
`Nats-Msg-Id` so a retried publish inside the duplicate window is stored once, and each stage runs a
`Worker` on its durable pull consumer. A message is acked only after its handler returned; while the
handler runs the worker sends `in_progress()` so long jobs are not redelivered, and a worker that dies
mid-job (no ack, no heartbeat) gets its message redelivered to a replica after `ack_wait`.

Handler failures are translated by `videobg.errors.ERROR_TABLE`:
    ACK  -> the handler recorded the failure on the job; the message is done
    NAK  -> retry later: nak with the next `backoff` delay, until `max_deliver` attempts
    TERM -> the input is bad; never redeliver
Unknown exceptions are treated as NAK. When the last attempt fails (or on TERM) `on_give_up` is called so
the service can mark the job failed, and the message is terminated rather than left in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from services.common.logs import redact
from videobg import nats_subjects
from videobg.errors import NatsAction, RateLimited, StageCrashed, Transient, VideoBgError

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
_STREAM_CONFIG_DIFFERS = 10058  # JSStreamNameExistErr: same name, different config -> update instead
# Errors that mean "NATS is unreachable or slow right now": callers see them as videobg Transient.
NATS_DOWN = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    # JetStream answering 503: no leader for the stream or the meta group yet (an election after a node
    # of the cluster died), or no quorum
    nats.js.errors.ServiceUnavailableError,
)


def server_urls(url: str | Sequence[str]) -> list[str]:
    """The NATS URLs of a setting: one URL, or several separated by commas (a cluster's nodes)."""
    parts = url.split(",") if isinstance(url, str) else list(url)
    urls = [u.strip() for u in parts if u.strip()]
    if not urls:
        raise ValueError("no NATS URL given")
    return urls


async def connect(
    url: str | Sequence[str],
    *,
    name: str | None = None,
    connect_timeout_s: float = 5.0,
    initial_attempts: int = 5,
    pending_size: int = 2 * 1024 * 1024,
    user: str = "",
    password: str = "",
) -> NatsClient:
    """Connect to any of the servers in `url` (comma-separated: a cluster's nodes; the client also
    learns the others from the server), trying `initial_attempts` rounds (1 s apart) before raising
    Transient; once connected, reconnect forever, to whichever node answers (a restarted or lost server
    is waited for, not fatal; subscriptions, pull consumers included, are re-made on the new
    connection). `pending_size` bytes of publishes are buffered while reconnecting; 0 makes a publish
    during an outage fail at once (OutboundBufferLimitError, a Transient), which the gateway wants: a
    client gets 503, not a hang. `user`/`password` log in as that NATS user (services/common/natsauth.py)
    unless a URL carries its own `user:password@`; logs show the servers without credentials."""
    servers = server_urls(url)
    shown = ",".join(_without_userinfo(s) for s in servers)

    async def on_error(e: Exception) -> None:
        log.warning("nats error: %s", redact(str(e)))

    async def on_disconnected() -> None:
        log.warning("nats disconnected from %s", shown)

    async def on_reconnected() -> None:
        log.info("nats reconnected to %s", nc.connected_url.hostname if nc.connected_url else "?")

    try:
        nc = await nats.connect(
            servers=servers,
            name=name,
            connect_timeout=connect_timeout_s,
            # nats.py counts every server of the pool, and the first connect too
            max_reconnect_attempts=max(initial_attempts - 1, 1) * len(servers),
            reconnect_time_wait=1.0,
            pending_size=pending_size,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
            **({"user": user, "password": password} if user else {}),
        )
    except (OSError, nats.errors.Error) as e:  # TimeoutError is an OSError
        raise Transient("The message bus is unreachable", detail=f"NATS at {shown}: {redact(repr(e))}") from e
    nc.options["max_reconnect_attempts"] = -1
    return nc


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else url.rpartition("@")[2]


# --- replication ---------------------------------------------------------------------------------------


class ReplicaShortfall(Transient):
    """Asked for more replicas than the NATS cluster has servers: a service refuses to start (retrying
    later helps once the servers are there)."""


def cluster_size(nc: NatsClient) -> int:
    """Servers in the cluster of the connected server: 1 for a lone server. Read from the server's INFO
    (`cluster` is set only when clustered; `connect_urls` lists the client URL of every node the server
    is routed to, itself included). nats.py keeps INFO in a private field; a missing one reads as 1."""
    info = getattr(nc, "_server_info", None) or {}
    if not info.get("cluster"):
        return 1
    return max(1, len(set(info.get("connect_urls") or [])))


def auto_replicas(nc: NatsClient, setting: int = 0) -> int:
    """The replica count of streams and buckets: `setting` when given (> 0), else 1 against a lone
    server and 3 against a cluster (a cluster that shows fewer nodes right now gets as many as it shows;
    a later start scales up)."""
    if setting > 0:
        return setting
    size = cluster_size(nc)
    return 1 if size == 1 else min(3, size)


async def _js_replicas(js: JetStreamContext, replicas: int) -> int:
    return replicas if replicas > 0 else auto_replicas(js._nc)


def _check_servers(js: JetStreamContext, what: str, replicas: int) -> None:
    size = cluster_size(js._nc)
    if replicas > size:
        raise ReplicaShortfall(
            f"{what}: {replicas} replicas wanted but the NATS cluster shows {size} server(s); start at "
            f"least {replicas} servers, or set NATS_REPLICAS to at most {size}"
        )


async def _scale_up(js: JetStreamContext, stream: str, replicas: int) -> None:
    """Raise an existing stream's replica count to `replicas` in place (JetStream copies its data to the
    new peers; consumers follow their stream). Never lowers it: a service started with a smaller setting
    must not shrink a cluster's copies."""
    current = (await js.stream_info(stream)).config
    if (current.num_replicas or 1) >= replicas:
        return
    _check_servers(js, stream, replicas)
    log.warning("stream %s: scaling from %s to %d replicas", stream, current.num_replicas, replicas)
    current.num_replicas = replicas
    await js.update_stream(current)
    await _await_leader(js, stream)


async def _await_leader(js: JetStreamContext, stream: str, deadline_s: float = 60.0) -> None:
    """After a change of replicas the stream elects a leader anew (about 10 s here); a request sent to it
    meanwhile gets no answer at all (a purge waited out any timeout), so return only once it has one."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            cluster = (await js.stream_info(stream)).cluster
            if cluster is None or cluster.leader:
                return
        except NATS_DOWN:
            pass
        if time.monotonic() > end:
            raise Transient(f"stream {stream} has no leader {deadline_s:.0f} s after a change of replicas")
        await asyncio.sleep(0.5)


async def _add_or_update(js: JetStreamContext, config: StreamConfig) -> None:
    replicas = config.num_replicas or 1
    name = config.name or ""  # every config here names its stream
    try:
        existing = (await js.stream_info(name)).config
    except nats.js.errors.NotFoundError:
        _check_servers(js, name, replicas)
        existing = None
    if existing is not None:
        # keep the larger replica count (never shrink; _scale_up raises it when asked)
        config.num_replicas = max(replicas, existing.num_replicas or 1)
        if config.num_replicas > (existing.num_replicas or 1):
            _check_servers(js, name, config.num_replicas)
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError as e:
        if e.err_code != _STREAM_CONFIG_DIFFERS:
            raise
        await js.update_stream(config)


async def replicas_current(js: JetStreamContext, streams: Sequence[str]) -> bool:
    """True when every replica of each stream is online and caught up with its leader: only then may
    the leader be lost without stalling the stream (a peer still catching up cannot take over)."""
    for name in streams:
        try:
            info = await js.stream_info(name)
        except (*NATS_DOWN, nats.js.errors.Error):
            return False
        cluster = info.cluster
        if cluster is None or (info.config.num_replicas or 1) == 1:
            continue
        peers = cluster.replicas or []
        if not cluster.leader or len(peers) < (info.config.num_replicas or 1) - 1:
            return False
        if not all(p.current and not p.offline for p in peers):
            return False
    return True


async def ensure_work_stream(
    js: JetStreamContext,
    name: str = nats_subjects.WORK_STREAM,
    subject_list: Sequence[str] = nats_subjects.WORK_SUBJECTS,
    *,
    duplicate_window_s: float = 120.0,
    replicas: int = 1,
) -> None:
    """Work-queue retention: a message is deleted once acked (or terminated); file storage survives
    restarts; publishes with a repeated Nats-Msg-Id within `duplicate_window_s` are dropped."""
    await _add_or_update(
        js,
        StreamConfig(
            name=name,
            subjects=list(subject_list),
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=duplicate_window_s,
            discard=DiscardPolicy.NEW,  # a full queue refuses new work rather than dropping queued jobs
            num_replicas=replicas,
        ),
    )


async def ensure_events_stream(
    js: JetStreamContext,
    name: str = nats_subjects.EVENTS_STREAM,
    *,
    max_age_s: float = nats_subjects.EVENTS_MAX_AGE_S,
    max_msgs_per_job: int = 10_000,
    replicas: int = 1,
) -> None:
    """Limits retention: events stay for `max_age_s` whoever has read them, so a late watcher can
    replay a job from its start. `max_msgs_per_job` bounds a runaway job's history."""
    await _add_or_update(
        js,
        StreamConfig(
            name=name,
            subjects=[nats_subjects.EVENTS_WILDCARD],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=max_age_s,
            max_msgs_per_subject=max_msgs_per_job,
            duplicate_window=min(120.0, max_age_s),
            num_replicas=replicas,
        ),
    )


async def ensure_kv(
    js: JetStreamContext, bucket: str, *, replicas: int = 0, history: int = 5, max_age_s: float = 0.0
) -> None:
    """A KV bucket (file storage, `history` revisions per key) with `replicas` copies (0: auto_replicas);
    an existing bucket with fewer is scaled up in place. Reads go to the stream leader (no direct get):
    a follower may lag, and a record read back right after its write must be there. `max_age_s` > 0:
    values expire that long after they were written (retention), set on an existing bucket too."""
    replicas = await _js_replicas(js, replicas)
    config = KeyValueConfig(
        bucket=bucket,
        history=history,
        storage=StorageType.FILE,
        replicas=replicas,
        direct=False,
        ttl=max_age_s or None,
    )
    try:
        await js.stream_info(f"KV_{bucket}")
    except nats.js.errors.NotFoundError:
        _check_servers(js, bucket, replicas)
        await js.create_key_value(config)
        return
    await _scale_up(js, f"KV_{bucket}", replicas)
    if max_age_s > 0:
        current = (await js.stream_info(f"KV_{bucket}")).config
        if abs(float(current.max_age or 0) - max_age_s) > 1e-3:
            log.info("bucket %s: retention set to %g s", bucket, max_age_s)
            current.max_age = max_age_s
            await js.update_stream(current)


async def ensure_jobs_bucket(
    js: JetStreamContext, bucket: str = nats_subjects.JOBS_BUCKET, *, replicas: int = 1
) -> None:
    """The KV bucket of job records (see jobstore.py). History 5 keeps a short audit trail per job."""
    await ensure_kv(js, bucket, replicas=replicas)


async def ensure_streams(
    js: JetStreamContext,
    replicas: int = 0,
    buckets: tuple[str, ...] = (nats_subjects.JOBS_BUCKET, nats_subjects.KEYS_BUCKET),
    *,
    job_retention_s: float = nats_subjects.JOBS_MAX_AGE_S,
) -> int:
    """Create (or bring up to date) VBG_WORK, VBG_EVENTS and the KV buckets of jobs and of keys/credits,
    each with `replicas` copies (0: auto_replicas: 1 on a lone server, 3 on a cluster). Idempotent: every
    service calls it at start-up, in any order. Raises ReplicaShortfall (a Transient) when something must
    be created or scaled to more replicas than the cluster has servers. Returns the replica count used."""
    try:
        replicas = await _js_replicas(js, replicas)
        await ensure_work_stream(js, replicas=replicas)
        await ensure_events_stream(js, replicas=replicas)
        for bucket in buckets:  # stages leave out the keys bucket: their NATS user may not touch it
            # job records expire (retention); keys and credits never do
            max_age = job_retention_s if bucket == nats_subjects.JOBS_BUCKET else 0.0
            await ensure_kv(js, bucket, replicas=replicas, max_age_s=max_age)
    except NATS_DOWN as e:
        raise Transient("The message bus (JetStream) is unavailable", detail=repr(e)) from e
    return replicas


# --- publishing ----------------------------------------------------------------------------------------


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


async def publish_work(
    js: JetStreamContext, subject: str, payload: dict[str, Any], msg_id: str, *, timeout_s: float = 5.0
) -> int:
    """Queue one unit of work. `msg_id` names the unit (e.g. f"{job_id}:segment"): publishing it again
    within the duplicate window stores nothing, so a publisher may retry blindly. Returns the stream
    sequence (that of the first copy for a duplicate)."""
    if not msg_id:
        raise ValueError("msg_id is required: it is what makes a retried publish safe")
    try:
        ack = await js.publish(subject, _encode(payload), timeout=timeout_s, headers={MSG_ID_HEADER: msg_id})
    except NATS_DOWN as e:
        raise Transient("The message bus is unavailable", detail=f"publish to {subject}: {e!r}") from e
    if ack.duplicate:
        log.info("duplicate work %s on %s dropped by JetStream (seq %s)", msg_id, subject, ack.seq)
    return ack.seq


async def publish_event(
    js: JetStreamContext,
    job_id: str,
    event: dict[str, Any],
    *,
    msg_id: str | None = None,
    timeout_s: float | None = None,
) -> int:
    """Append an event to the job's event subject. `job_id` and `ts` (unix seconds) are added when
    missing. A `msg_id` (e.g. f"{job_id}:completed") makes a retried publish land once. `timeout_s`:
    how long to wait for the ack (None: the JetStream context's default, 5 s)."""
    body = {"job_id": job_id, "ts": time.time(), **event}
    headers = {MSG_ID_HEADER: msg_id} if msg_id else None
    try:
        ack = await js.publish(
            nats_subjects.events_subject(job_id), _encode(body), headers=headers, timeout=timeout_s
        )
    except NATS_DOWN as e:
        raise Transient("The message bus is unavailable", detail=f"event of job {job_id}: {e!r}") from e
    return ack.seq


async def last_event(
    js: JetStreamContext, job_id: str, *, stream: str = nats_subjects.EVENTS_STREAM
) -> dict[str, Any] | None:
    """The job's newest event, or None when it has none (never published, or aged out)."""
    try:
        msg = await js.get_last_msg(stream, nats_subjects.events_subject(job_id))
    except nats.js.errors.NotFoundError:
        return None
    except NATS_DOWN as e:
        raise Transient("The message bus is unavailable", detail=f"events of job {job_id}: {e!r}") from e
    try:
        body = json.loads(msg.data or b"")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def watch_events(
    js: JetStreamContext,
    job_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] | None = None,
    stream: str = nats_subjects.EVENTS_STREAM,
) -> AsyncGenerator[dict[str, Any]]:
    """Every event of the job from its first, in order, then new ones as they come; ends after an event
    for which `until(event)` is true (else never: break out, ideally inside `contextlib.aclosing`, which
    removes the ephemeral consumer at once)."""
    sub = await js.subscribe(
        nats_subjects.events_subject(job_id),
        stream=stream,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    try:
        async for msg in sub.messages:
            event = json.loads(msg.data)
            yield event
            if until is not None and until(event):
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


# --- worker --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One delivery of a work message, as the handler sees it."""

    subject: str
    payload: dict[str, Any]
    num_delivered: int  # 1 on the first delivery; > 1 is a redelivery (a retry or a worker that died)
    stream_seq: int
    msg_id: str | None

    @property
    def redelivered(self) -> bool:
        return self.num_delivered > 1


Handler = Callable[[Delivery], Awaitable[None]]
GiveUp = Callable[[Delivery, BaseException], Awaitable[None]]


@dataclass
class WorkerStats:
    acked: int = 0
    naked: int = 0
    termed: int = 0
    redeliveries: int = 0
    gave_up: int = 0
    last_error: str | None = field(default=None, repr=False)


class Worker:
    """Runs one durable pull consumer, one message at a time.

    ack_wait    seconds a delivery may go without an ack or heartbeat before the server redelivers it
                (a dead worker); heartbeats go out every ack_wait/3 while the handler runs.
    max_deliver attempts in all, first delivery included. The server is told one more: a worker that
                died on the last attempt (OOM, a poison input: no ack, no nak, no error to give up on)
                gets the message once more, and that delivery only gives the job up (`on_give_up` with
                StageCrashed), so the job ends `failed` instead of staying `processing` for ever.
    backoff     delays before retry n+1 after a failed attempt n (the last repeats); also sent to the
                server as the consumer's BackOff, floored at ack_wait (there it replaces ack_wait per
                attempt, and a shorter value would outrun the heartbeats), so crash loops back off too.

    concurrency messages handled at once (default 1: one job's compute at a time). An I/O-bound stage
                (ingest: downloads) takes several, so one slow source does not hold up the others.

    Wire `stop()` to SIGTERM (`stop_on_signals`): the messages in hand are finished and acked, then the
    loop ends. Cancelling `run()` instead abandons them unacked; they are redelivered after ack_wait.
    """

    def __init__(
        self,
        js: JetStreamContext,
        subject: str,
        durable: str,
        handler: Handler,
        *,
        stream: str = nats_subjects.WORK_STREAM,
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        backoff: Sequence[float] = (5.0, 30.0, 120.0),
        on_give_up: GiveUp | None = None,
        fetch_timeout: float = 1.0,
        concurrency: int = 1,
    ):
        if max_deliver < 1 or ack_wait <= 0 or concurrency < 1:
            raise ValueError("need max_deliver >= 1, ack_wait > 0 and concurrency >= 1")
        self.concurrency = concurrency
        self._in_hand: set[asyncio.Task[None]] = set()
        self.js = js
        self.subject = subject
        self.durable = durable
        self.stream = stream
        self.handler = handler
        self.ack_wait = ack_wait
        self.max_deliver = max_deliver
        self.backoff = tuple(backoff) or (ack_wait,)
        self.on_give_up = on_give_up
        self.fetch_timeout = fetch_timeout
        self.heartbeat_s = ack_wait / 3
        self.stats = WorkerStats()
        self._stopping = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None

    def consumer_config(self) -> ConsumerConfig:
        # The server wants fewer BackOff entries than max_deliver.
        server_backoff = [max(self.ack_wait, b) for b in self.backoff][: max(self.max_deliver - 1, 0)]
        return ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            filter_subject=self.subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=self.max_deliver + 1,  # the last one gives up (class docstring)
            backoff=server_backoff or None,
            max_ack_pending=1000,
        )

    async def start(self, *, deadline_s: float = 60.0) -> None:
        """Create or update the durable consumer and bind to it (replicas share it). While JetStream has
        no leader for the stream (a NATS node lost moments ago) keep trying, up to `deadline_s`, then
        raise Transient."""
        end = time.monotonic() + deadline_s
        while self._sub is None:
            try:
                await self.js.add_consumer(self.stream, self.consumer_config())
                self._sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
            except NATS_DOWN as e:
                if time.monotonic() > end:
                    raise Transient(
                        "The message bus is unavailable", detail=f"bind {self.durable}: {e!r}"
                    ) from e
                log.warning("%s: consumer not reachable yet (%r); retrying", self.durable, e)
                await asyncio.sleep(1.0)

    def stop(self) -> None:
        """Graceful: finish the message in hand, then stop fetching. Safe to call from a signal handler."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        await self.start()
        assert self._sub is not None
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._in_hand)
                if free <= 0:
                    await asyncio.wait(set(self._in_hand), return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await self._sub.fetch(free, timeout=self.fetch_timeout)
                except TimeoutError:
                    # nothing yet. nats' TimeoutError is a TimeoutError; a batch fetch can also end in
                    # asyncio.wait_for's plain one, at random (it ended an idle ingest once)
                    continue
                except (nats.errors.Error, nats.js.errors.Error) as e:
                    log.warning("%s: fetch failed (%r); retrying", self.durable, e)
                    await asyncio.sleep(min(self.fetch_timeout, 1.0))
                    continue
                if self.concurrency == 1:
                    for msg in msgs:
                        await self._process(msg)
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._process(msg))
                    self._in_hand.add(task)
                    task.add_done_callback(self._in_hand.discard)
            if self._in_hand:  # a graceful stop: finish what is in hand
                await asyncio.gather(*self._in_hand, return_exceptions=True)
        except asyncio.CancelledError:
            for task in self._in_hand:  # abandoned: redelivered after ack_wait
                task.cancel()
            raise
        finally:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await msg.in_progress()
            except Exception as e:  # a lost heartbeat only risks a redelivery
                log.warning("%s: in_progress failed: %r", self.durable, e)

    def _retry_delay(self, attempt: int, exc: BaseException) -> float:
        delay = self.backoff[min(attempt, len(self.backoff)) - 1]
        if isinstance(exc, RateLimited):
            delay = max(delay, exc.retry_after_s)
        return delay

    async def _process(self, msg: Msg) -> None:
        meta = msg.metadata
        try:
            payload = json.loads(msg.data)
            if not isinstance(payload, dict):
                raise ValueError("payload is not a JSON object")
        except ValueError as e:
            log.error("%s: undecodable message seq %s terminated: %s", self.durable, meta.sequence.stream, e)
            await msg.term()
            self.stats.termed += 1
            return
        d = Delivery(
            subject=msg.subject,
            payload=payload,
            num_delivered=meta.num_delivered,
            stream_seq=meta.sequence.stream,
            msg_id=(msg.headers or {}).get(MSG_ID_HEADER),
        )
        if d.redelivered:
            self.stats.redeliveries += 1
            log.info(
                "%s: redelivery %d of seq %d (%s)", self.durable, d.num_delivered, d.stream_seq, d.msg_id
            )
        if d.num_delivered > self.max_deliver:
            # every attempt died without a word: do not run it again, give the job up
            crashed = StageCrashed(
                f"the {self.subject.rsplit('.', 1)[-1]} stage stopped without a result "
                f"{self.max_deliver} times (a crash or running out of memory on this input)"
            )
            await self._give_up(msg, d, crashed)
            return
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            await self.handler(d)
        except Exception as e:  # CancelledError is not caught: an abandoned message is redelivered
            await self._failed(msg, d, e)
        else:
            await self._ack(msg)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack_sync(timeout=5.0)
            self.stats.acked += 1
        except Exception as e:  # the work is done; at worst it is redelivered and must be idempotent
            log.warning("%s: ack failed (%r); message may be redelivered", self.durable, e)

    async def _failed(self, msg: Msg, d: Delivery, exc: Exception) -> None:
        action = exc.spec.nats if isinstance(exc, VideoBgError) else NatsAction.NAK
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.log(
            logging.WARNING if action is NatsAction.NAK else logging.ERROR,
            "%s: seq %d attempt %d/%d failed -> %s: %s",
            self.durable, d.stream_seq, d.num_delivered, self.max_deliver, action.value, self.stats.last_error,
        )  # fmt: skip
        if action is NatsAction.ACK:
            await self._ack(msg)
            return
        if action is NatsAction.NAK and d.num_delivered < self.max_deliver:
            try:
                await msg.nak(delay=self._retry_delay(d.num_delivered, exc))
                self.stats.naked += 1
            except Exception as e:  # NATS away: the message is redelivered after ack_wait anyway
                log.warning("%s: nak failed (%r); redelivery after ack_wait", self.durable, e)
            return
        # TERM, or the last attempt failed: terminate so the message does not linger in the work queue.
        await self._give_up(msg, d, exc)

    async def _give_up(self, msg: Msg, d: Delivery, exc: BaseException) -> None:
        try:
            await msg.term()
        except Exception as e:
            log.warning("%s: term failed (%r); the message may be delivered again", self.durable, e)
        self.stats.termed += 1
        self.stats.gave_up += 1
        if self.on_give_up is not None:
            try:
                await self.on_give_up(d, exc)
            except Exception:
                log.exception("%s: on_give_up failed for seq %d", self.durable, d.stream_seq)


def stop_on_signals(*workers: Worker, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Make SIGTERM/SIGINT stop the workers gracefully (call from inside the running event loop)."""

    def stop_all() -> None:
        for w in workers:
            w.stop()

    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, stop_all)
