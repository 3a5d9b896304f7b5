"""Work queue, workers and job events against a real nats-server with JetStream.

Each work test gets a stream and consumer of its own (a work-queue stream allows one consumer per
subject), built with the same `ensure_work_stream` and `Worker` as the services, with ack_wait 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from nats.js.api import RetentionPolicy

from devstack.procs import free_ports
from services.common import bus
from videobg import nats_subjects
from videobg.errors import InvalidInput, Transient

pytestmark = pytest.mark.integration

ACK_WAIT = 2.0


class Recorder:
    """A handler that records deliveries and behaves as `script(delivery)` says."""

    def __init__(self, script=None):
        self.deliveries: list[bus.Delivery] = []
        self.times: list[float] = []
        self.script = script
        self.seen = asyncio.Event()

    async def __call__(self, d: bus.Delivery) -> None:
        self.deliveries.append(d)
        self.times.append(time.monotonic())
        self.seen.set()
        if self.script is not None:
            await self.script(d)

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.deliveries) < n:
                self.seen.clear()
                await self.seen.wait()

        await asyncio.wait_for(enough(), timeout)


async def _work_stream(js, uid: str) -> tuple[str, str]:
    stream, subject = f"T{uid}", f"t{uid}.work"
    await bus.ensure_work_stream(js, stream, [subject])
    return stream, subject


def _worker(js, stream: str, subject: str, uid: str, handler, **kw) -> bus.Worker:
    kw.setdefault("ack_wait", ACK_WAIT)
    kw.setdefault("backoff", (0.2,))
    return bus.Worker(js, subject, f"w{uid}", handler, stream=stream, fetch_timeout=0.5, **kw)


@contextlib.asynccontextmanager
async def running(*workers: bus.Worker):
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield tasks
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


async def _settled(js, stream: str, durable: str) -> tuple[int, int, int]:
    """(messages left in the stream, pending for the consumer, delivered but unacked)."""
    si = await js.stream_info(stream)
    ci = await js.consumer_info(stream, durable)
    return si.state.messages, ci.num_pending, ci.num_ack_pending


async def test_ensure_streams_is_idempotent(jetstream) -> None:
    async with jetstream() as (_, js):
        await bus.ensure_streams(js)  # a second time, as every service does at start-up
        work = await js.stream_info(nats_subjects.WORK_STREAM)
        assert work.config.retention == RetentionPolicy.WORK_QUEUE
        assert set(work.config.subjects) == set(nats_subjects.WORK_SUBJECTS)
        assert work.config.duplicate_window == 120
        events = await js.stream_info(nats_subjects.EVENTS_STREAM)
        assert events.config.retention == RetentionPolicy.LIMITS
        assert events.config.max_age == nats_subjects.EVENTS_MAX_AGE_S
        await js.key_value(nats_subjects.JOBS_BUCKET)


async def test_work_delivered_once_and_duplicate_publish_dropped(jetstream, uid: str) -> None:
    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        seq1 = await bus.publish_work(js, subject, {"job_id": uid}, msg_id=f"{uid}:ingest")
        seq2 = await bus.publish_work(js, subject, {"job_id": uid}, msg_id=f"{uid}:ingest")
        assert seq1 == seq2  # the second publish stored nothing
        assert (await js.stream_info(stream)).state.messages == 1

        rec = Recorder()
        w = _worker(js, stream, subject, uid, rec)
        async with running(w):
            await rec.wait_for(1)
            await asyncio.sleep(0.5)
        assert [(d.payload, d.num_delivered, d.msg_id) for d in rec.deliveries] == [
            ({"job_id": uid}, 1, f"{uid}:ingest")
        ]
        assert w.stats.acked == 1
        assert await _settled(js, stream, w.durable) == (0, 0, 0)  # acked = gone from the work queue


async def test_transient_error_is_nakked_and_redelivered_after_backoff(jetstream, uid: str) -> None:
    async def fail_first(d: bus.Delivery) -> None:
        if d.num_delivered == 1:
            raise Transient("S3 down")

    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        await bus.publish_work(js, subject, {"n": 1}, msg_id=uid)
        rec = Recorder(fail_first)
        w = _worker(js, stream, subject, uid, rec, backoff=(0.5,))
        async with running(w):
            await rec.wait_for(2)
        assert [d.num_delivered for d in rec.deliveries] == [1, 2]
        assert rec.times[1] - rec.times[0] >= 0.45  # the nak carried the backoff delay
        assert (w.stats.naked, w.stats.acked, w.stats.redeliveries) == (1, 1, 1)
        assert await _settled(js, stream, w.durable) == (0, 0, 0)


async def test_bad_input_is_terminated_not_redelivered(jetstream, uid: str) -> None:
    gave_up: list[tuple[int, str]] = []

    async def give_up(d: bus.Delivery, exc: BaseException) -> None:
        gave_up.append((d.num_delivered, type(exc).__name__))

    async def bad(d: bus.Delivery) -> None:
        raise InvalidInput("not a video")

    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        await bus.publish_work(js, subject, {"n": 1}, msg_id=uid)
        rec = Recorder(bad)
        w = _worker(js, stream, subject, uid, rec, on_give_up=give_up)
        async with running(w):
            await rec.wait_for(1)
            await asyncio.sleep(ACK_WAIT + 0.5)  # past ack_wait: a redelivery would have come by now
        assert len(rec.deliveries) == 1
        assert gave_up == [(1, "InvalidInput")]
        assert await _settled(js, stream, w.durable) == (0, 0, 0)


async def test_unknown_error_retried_until_max_deliver_then_given_up(jetstream, uid: str) -> None:
    gave_up: list[int] = []

    async def give_up(d: bus.Delivery, exc: BaseException) -> None:
        gave_up.append(d.num_delivered)

    async def boom(d: bus.Delivery) -> None:
        raise RuntimeError("bug")

    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        await bus.publish_work(js, subject, {"n": 1}, msg_id=uid)
        rec = Recorder(boom)
        w = _worker(js, stream, subject, uid, rec, max_deliver=3, backoff=(0.1, 0.2), on_give_up=give_up)
        async with running(w):
            await rec.wait_for(3)
            await asyncio.sleep(0.5)
        assert [d.num_delivered for d in rec.deliveries] == [1, 2, 3]
        assert gave_up == [3]
        assert await _settled(js, stream, w.durable) == (0, 0, 0)


async def test_unacked_message_is_redelivered_after_ack_wait(jetstream, uid: str) -> None:
    """A consumer that takes a message and never acks it (a crashed process): the server hands the
    message to the next worker once ack_wait has passed without a heartbeat."""
    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        w = _worker(js, stream, subject, uid, Recorder())
        await w.start()  # creates the durable consumer with the worker's settings
        await bus.publish_work(js, subject, {"n": 1}, msg_id=uid)
        raw = await js.pull_subscribe_bind(durable=w.durable, stream=stream)
        (taken,) = await raw.fetch(1, timeout=5)
        t_taken = time.monotonic()
        await raw.unsubscribe()  # gone, no ack

        rec = Recorder()
        w2 = _worker(js, stream, subject, uid, rec)
        async with running(w2):
            await rec.wait_for(1, timeout=ACK_WAIT * 3)
        assert rec.deliveries[0].num_delivered == 2
        assert rec.times[0] - t_taken >= ACK_WAIT * 0.9
        assert await _settled(js, stream, w2.durable) == (0, 0, 0)


async def test_cancelled_worker_task_leads_to_redelivery(jetstream, uid: str) -> None:
    """Cancelling run() mid-handler (the process being killed) must not ack or nak the message."""
    started = asyncio.Event()

    async def hang(d: bus.Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        await bus.publish_work(js, subject, {"n": 1}, msg_id=uid)
        w1 = _worker(js, stream, subject, uid, Recorder(hang))
        task = asyncio.create_task(w1.run())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        t_killed = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (w1.stats.acked, w1.stats.naked, w1.stats.termed) == (0, 0, 0)

        rec = Recorder()
        w2 = _worker(js, stream, subject, uid, rec)
        async with running(w2):
            await rec.wait_for(1, timeout=ACK_WAIT * 3)
        assert rec.deliveries[0].num_delivered == 2
        assert rec.deliveries[0].redelivered
        # the last heartbeat may have gone out up to ack_wait/3 before the kill
        assert rec.times[0] - t_killed >= ACK_WAIT * 0.6
        assert await _settled(js, stream, w2.durable) == (0, 0, 0)


async def test_heartbeats_keep_a_long_handler_from_redelivery(jetstream, uid: str) -> None:
    async def slow(d: bus.Delivery) -> None:
        await asyncio.sleep(ACK_WAIT * 2.25)

    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        await bus.publish_work(js, subject, {"n": 1}, msg_id=uid)
        rec = Recorder(slow)
        # two replicas on the same durable: a redelivery would reach the idle one
        w1 = _worker(js, stream, subject, uid, rec)
        w2 = _worker(js, stream, subject, uid, rec)
        async with running(w1, w2):
            await rec.wait_for(1)
            await asyncio.sleep(ACK_WAIT * 2.25 + 0.5)
        assert [d.num_delivered for d in rec.deliveries] == [1]
        assert w1.stats.acked + w2.stats.acked == 1
        assert await _settled(js, stream, w1.durable) == (0, 0, 0)


async def test_stop_finishes_the_message_in_hand(jetstream, uid: str) -> None:
    started = asyncio.Event()

    async def slow(d: bus.Delivery) -> None:
        started.set()
        await asyncio.sleep(0.8)

    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        await bus.publish_work(js, subject, {"n": 1}, msg_id=f"{uid}-1")
        w = _worker(js, stream, subject, uid, Recorder(slow))
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(started.wait(), 10)
        await bus.publish_work(js, subject, {"n": 2}, msg_id=f"{uid}-2")
        w.stop()  # as the SIGTERM handler does
        await asyncio.wait_for(task, 10)
        assert w.stats.acked == 1  # the first was finished and acked, the second never fetched
        assert await _settled(js, stream, w.durable) == (1, 1, 0)


async def test_watch_replays_then_follows_events_in_order(jetstream, uid: str) -> None:
    async with jetstream() as (_, js):
        for p in (0, 10, 20):
            await bus.publish_event(js, uid, {"type": "progress", "progress": p})
        await bus.publish_event(js, f"{uid}other", {"type": "progress", "progress": 99})

        got: list[dict] = []

        async def watch() -> None:
            async with contextlib.aclosing(
                bus.watch_events(js, uid, until=lambda e: e["type"] == "completed")
            ) as events:
                async for event in events:
                    got.append(event)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.3)  # the watcher has replayed the history and now follows
        for p in (50, 100):
            await bus.publish_event(js, uid, {"type": "progress", "progress": p})
        await bus.publish_event(js, uid, {"type": "completed"}, msg_id=f"{uid}:completed")
        await bus.publish_event(js, uid, {"type": "completed"}, msg_id=f"{uid}:completed")  # dropped
        await asyncio.wait_for(watcher, 10)

        assert [e.get("progress") for e in got] == [0, 10, 20, 50, 100, None]
        assert got[-1]["type"] == "completed"
        assert all(e["job_id"] == uid for e in got)
        assert [e["ts"] for e in got] == sorted(e["ts"] for e in got)


async def test_connect_to_nothing_is_transient() -> None:
    (port,) = free_ports(1)  # nothing listens there
    with pytest.raises(Transient):
        await bus.connect(f"nats://127.0.0.1:{port}", initial_attempts=1)


async def test_worker_keeps_fetching_through_a_plain_timeout_error(jetstream, uid: str) -> None:
    """A batch fetch (a worker with concurrency > 1) that finds nothing can end in Python's own
    TimeoutError (asyncio.wait_for inside nats-py) instead of nats' TimeoutError, at random. The loop
    must take both as "nothing yet": once it ended the loop, and so the ingest service, after a few
    idle minutes in CI. The plain error is forced here for the first fetches."""
    async with jetstream() as (_, js):
        stream, subject = await _work_stream(js, uid)
        rec = Recorder()
        w = _worker(js, stream, subject, uid, rec, concurrency=4)
        await w.start()
        real_fetch, raised = w._sub.fetch, []

        async def flaky_fetch(*args, **kwargs):
            if len(raised) < 3:
                raised.append(1)
                raise TimeoutError()
            return await real_fetch(*args, **kwargs)

        w._sub.fetch = flaky_fetch
        await bus.publish_work(js, subject, {"job_id": uid}, msg_id=f"{uid}:idle")
        async with running(w) as tasks:
            await rec.wait_for(1, timeout=30.0)
            assert not tasks[0].done()
        assert len(raised) == 3
