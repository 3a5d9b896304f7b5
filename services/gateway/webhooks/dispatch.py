"""The webhook dispatcher the gateway runs: reads job events from a durable JetStream consumer shared by
every gateway replica, POSTs each webhook event (signed, SSRF-guarded, retried with backoff) and records
each attempt on the job record. The delivery rules are in the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from typing import TYPE_CHECKING, Any

import httpx
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.common import ssrf
from services.common.fetch import USER_AGENT, send_pinned_async
from services.common.jobstore import now_iso
from services.common.record import Job, WebhookDelivery
from services.gateway.webhooks.payload import EVENT_OF_STATUS, payload
from services.gateway.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    delivery_id,
    master_secret,
    owner_secret,
    sign,
)
from videobg import metrics, nats_subjects
from videobg.errors import InvalidInput, NotFound, Transient

if TYPE_CHECKING:
    from services.gateway.jobs import Gateway

log = logging.getLogger(__name__)

CONSUMER = "webhooks"  # durable consumer on VBG_EVENTS, shared by every gateway replica
MAX_IN_FLIGHT = 64  # event messages handled at once per gateway
_REMEMBER = 10_000  # handled (job, event) pairs and webhook-less jobs kept per process, to skip reads


class _KeyedLocks:
    """One asyncio.Lock per key while anyone holds or waits for it (FIFO, so a job's events keep their
    order)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _remember(seen: OrderedDict[Hashable, None], key: Hashable) -> None:
    seen[key] = None
    seen.move_to_end(key)
    while len(seen) > _REMEMBER:
        seen.popitem(last=False)


class Dispatcher:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.jobs = gateway.jobs
        self._locks = _KeyedLocks()
        self._done: OrderedDict[Hashable, None] = OrderedDict()  # (job_id, event) handled for good
        self._quiet: OrderedDict[Hashable, None] = OrderedDict()  # jobs without a webhook
        self._tasks: set[asyncio.Task[None]] = set()
        self._http = httpx.AsyncClient(
            timeout=self.settings.webhook_timeout_s,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
            # no keep-alive: connections are keyed by address, and a vetted address is per URL
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def backoff(self, attempts: int) -> float:
        """Delay after `attempts` failed attempts: webhook_backoff_s, doubling, capped."""
        s = self.settings
        return float(min(s.webhook_backoff_s * 2 ** max(attempts - 1, 0), s.webhook_backoff_max_s))

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=CONSUMER,
            name=CONSUMER,
            filter_subject=nats_subjects.EVENTS_WILDCARD,
            deliver_policy=DeliverPolicy.NEW,  # on first creation; afterwards the durable's position
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=max(30.0, 4 * self.settings.webhook_timeout_s),
            max_deliver=-1,  # attempts are bounded by the record, not by the server
            # events waiting for a retry count as pending: room for many failing receivers at once
            max_ack_pending=10_000,
        )

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        """Create (or update) the durable consumer and bind to it: errors surface at start-up."""
        js = self.gateway.js
        await js.add_consumer(nats_subjects.EVENTS_STREAM, self.consumer_config())
        return await js.pull_subscribe_bind(durable=CONSUMER, stream=nats_subjects.EVENTS_STREAM)

    async def run(self, sub: JetStreamContext.PullSubscription) -> None:
        """Fetch event messages and handle each in a task, at most MAX_IN_FLIGHT at once. Cancel to stop."""
        try:
            while True:
                free = MAX_IN_FLIGHT - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(free, timeout=1.0)
                except TimeoutError:
                    # nats' TimeoutError, and the builtin one a batch fetch (free > 1) raises when its
                    # deadline runs out between its two pull requests (common on a loaded machine):
                    # catching only nats' ended this loop and, silently, every webhook of this gateway
                    continue
                except (nats.errors.Error, nats.js.errors.Error) as e:
                    log.warning("webhooks: fetch failed (%r); retrying", e)
                    await asyncio.sleep(1.0)
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._handle(msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self, grace_s: float) -> None:
        """Let attempts in flight finish for `grace_s`, then cancel them (their events are redelivered)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    async def _handle(self, msg: Msg) -> None:
        try:
            delay = await self.process(msg.data, msg.metadata.sequence.stream)
        except Exception as e:  # the record or NATS failed us: try this event again later
            log.warning("webhooks: event seq %s failed (%r); retrying", msg.metadata.sequence.stream, e)
            delay = self.settings.webhook_backoff_s
        try:
            if delay is None:
                await msg.ack()
            else:
                await msg.nak(delay=delay)
        except Exception as e:  # at worst the event comes again, and the record says what was done
            log.warning("webhooks: ack/nak failed (%r)", e)

    async def process(self, data: bytes, seq: int) -> float | None:
        """Handle one event message: None when it is done with, else the delay before trying again."""
        try:
            event = json.loads(data)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        name = EVENT_OF_STATUS.get(str(event.get("status")))
        job_id = event.get("job_id")
        if name is None or not isinstance(job_id, str) or event.get("synthetic"):
            return None
        if job_id in self._quiet or (job_id, name) in self._done:
            return None
        async with self._locks.hold(job_id):
            try:
                job = await self.jobs.get(job_id)
            except NotFound:
                return None
            url = job.spec.webhook_url
            if not url:
                _remember(self._quiet, job_id)
                return None
            state = await self._claim(job_id, name, seq)
            if state is None:  # another message of this kind owns the delivery (and may be retrying)
                return None
            if state.finished:
                _remember(self._done, (job_id, name))
                return None
            return await self._attempt(job, name, event, url, state.attempts + 1)

    async def _claim(self, job_id: str, name: str, seq: int) -> WebhookDelivery | None:
        """The event's delivery state if this message (stream seq) owns it, claiming it if nobody has;
        None if another message of the same kind owns it."""
        state: WebhookDelivery | None = None

        def claim(job: Job) -> Job | None:
            nonlocal state
            current = job.webhook.events.get(name)
            if current is not None:
                state = current if current.seq == seq or current.finished else None
                return None
            state = WebhookDelivery(delivery_id=delivery_id(job_id, name), seq=seq)
            job.webhook.events = {**job.webhook.events, name: state}
            return job

        await self.jobs.update(job_id, claim)
        return state

    async def _attempt(
        self, job: Job, name: str, event: dict[str, Any], url: str, attempt: int
    ) -> float | None:
        status, error, permanent = await self._post(job, name, event, url, attempt)
        delivered = status is not None and 200 <= status < 300
        gave_up = not delivered and (permanent or attempt >= self.settings.webhook_max_attempts)
        metrics.WEBHOOK_DELIVERIES.labels(outcome="delivered" if delivered else "failed").inc()
        await self._record(job.id, name, status, error, delivered, gave_up)
        if delivered or gave_up:
            _remember(self._done, (job.id, name))
            (log.info if delivered else log.warning)(
                "job %s: %s %s after %d attempt(s)%s",
                job.id, name, "delivered" if delivered else "given up", attempt, f": {error}" if error else "",
            )  # fmt: skip
            return None
        delay = self.backoff(attempt)
        log.info("job %s: %s attempt %d failed (%s); next in %.1f s", job.id, name, attempt, error, delay)
        return delay

    async def _post(
        self, job: Job, name: str, event: dict[str, Any], url: str, attempt: int
    ) -> tuple[int | None, str, bool]:
        """One attempt: (HTTP status or None, error text, permanent failure)."""
        try:
            target = await asyncio.to_thread(ssrf.guard, url, self.settings.fetch_allow, what="webhook URL")
        except Transient as e:
            return None, e.message, False
        except InvalidInput as e:
            return None, e.message, True
        body = json.dumps(await payload(self.gateway, job, name, event), separators=(",", ":")).encode()
        timestamp = int(time.time())
        secret = owner_secret(master_secret(self.settings), job.owner)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: name,
            DELIVERY_HEADER: delivery_id(job.id, name),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: f"v1={sign(secret, timestamp, body)}",
            "X-Videobg-Attempt": str(attempt),
        }
        limit = self.settings.webhook_timeout_s
        try:
            # the whole attempt, not each read: a receiver trickling its answer a byte at a time would
            # otherwise hold this task (and its job's later events) for as long as it likes
            async with asyncio.timeout(limit):
                resp = await send_pinned_async(self._http, "POST", target, headers=headers, content=body)
                await resp.aclose()  # the receiver's body is not read: it could be anything, of any size
        except TimeoutError:
            return None, f"the receiver did not answer within {limit:g} s", False
        except httpx.HTTPError as e:
            # the record (which its owner reads) gets a plain description; the exception goes to the log
            log.info("job %s: %s attempt %d: %r", job.id, name, attempt, e)
            return None, _describe(e), False
        return resp.status_code, "" if resp.is_success else f"HTTP {resp.status_code}", False

    async def _record(
        self, job_id: str, name: str, status: int | None, error: str, delivered: bool, gave_up: bool
    ) -> None:
        at = now_iso()

        def record(job: Job) -> Job:
            hook = job.webhook
            state = hook.events.get(name) or WebhookDelivery(delivery_id=delivery_id(job_id, name))
            state.attempts += 1
            state.last_status, state.last_error, state.last_attempt_at = status, error, at
            state.delivered, state.gave_up = delivered, gave_up
            if delivered:
                state.delivered_at = at
            hook.events = {**hook.events, name: state}
            hook.event, hook.attempts, hook.last_status, hook.delivered = (
                name,
                state.attempts,
                status,
                delivered,
            )
            return job

        await self.jobs.update(job_id, record)


_RUNNING: weakref.WeakKeyDictionary[Gateway, Dispatcher] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def dispatching(gateway: Gateway) -> AsyncIterator[Dispatcher | None]:
    """Run the webhook dispatcher beside the gateway (unless `webhooks_enabled` is false):

        async with webhooks.dispatching(gateway):
            ...serve...

    Re-entrant: inside a block already running one for this gateway, it yields that one (so a test can
    ask for a dispatcher whether or not the server started one)."""
    if not gateway.settings.webhooks_enabled:
        yield None
        return
    running = _RUNNING.get(gateway)
    if running is not None:
        yield running
        return
    if not gateway.settings.webhook_secret:
        log.warning("no webhook_secret set: webhooks are signed with a random per-process secret")
    dispatcher = Dispatcher(gateway)
    task = asyncio.create_task(dispatcher.run(await dispatcher.subscribe()), name="webhooks")
    _RUNNING[gateway] = dispatcher
    try:
        yield dispatcher
    finally:
        _RUNNING.pop(gateway, None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await dispatcher.close(grace_s=min(5.0, gateway.settings.webhook_timeout_s))


def _describe(exc: httpx.HTTPError) -> str:
    """A failed attempt in words, without the exception's text (addresses, library internals)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connecting to the receiver timed out"
    if isinstance(exc, httpx.ConnectError):
        return "the receiver refused or could not be reached"
    if isinstance(exc, httpx.TimeoutException):
        return "the receiver did not answer in time"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver's answer was not valid HTTP"
    return "the request to the receiver failed"
