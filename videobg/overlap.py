"""Overlapped stages: each stage runs in its own thread, joined by bounded queues, order preserved.

PyAV, OpenCV and PyTorch release the GIL in their heavy calls, so decode, inference, refinement and
encoding of different frames run at the same time and a job goes about as fast as its slowest stage.
Memory stays flat: at most `maxsize` items wait between two stages.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class StageClock:
    """Busy seconds per stage, filled in by the stage threads."""

    def __init__(self) -> None:
        self.busy: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, dt: float) -> None:
        with self._lock:
            self.busy[stage] = self.busy.get(stage, 0.0) + dt


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of up to `size` items (the last may be shorter), in order."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def threaded(
    items: Iterable[T],
    fn: Callable[[T], U] | None = None,
    *,
    name: str,
    maxsize: int = 8,
    clock: StageClock | None = None,
    stop: threading.Event | None = None,
    workers: int = 1,
) -> Iterator[U]:
    """Yield fn(item) for each item, computed ahead in a background thread (fn=None: just prefetch).

    `workers` > 1: fn runs on that many threads at once, on consecutive items, and the results still
    come out in order (for a stateless fn only). An exception in the thread is re-raised in the
    consumer; closing the consumer stops the thread.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and fn is not None:
        yield from _pooled(items, fn, name=name, maxsize=maxsize, clock=clock, stop=stop, workers=workers)
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    halt = threading.Event()

    def put(x: Any) -> bool:
        return _put(q, halt, x)

    def run() -> None:
        try:
            it = iter(items)
            while not halt.is_set() and not (stop is not None and stop.is_set()):
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                out: Any = item
                if fn is not None:  # time only this stage's own work, not the wait on upstream
                    t0 = time.perf_counter()
                    out = fn(item)
                if clock is not None:
                    clock.add(name, time.perf_counter() - t0)
                if not put(out):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            put(_Failure(exc))

    thread = threading.Thread(target=run, name=f"stage-{name}", daemon=True)
    thread.start()  # on the first next(): a stage never iterated starts no thread
    yield from _drain(q, halt, thread)


def _put(q: queue.Queue[Any], halt: threading.Event, x: Any) -> bool:
    """Queue x for the consumer, waiting while the queue is full; False once the consumer has gone."""
    while not halt.is_set():
        try:
            q.put(x, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue[Any], halt: threading.Event, thread: threading.Thread) -> Iterator[Any]:
    """The consumer's side of a stage: items until done, a failure re-raised, the thread stopped on close."""
    try:
        while True:
            x = q.get()
            if x is _DONE:
                return
            if isinstance(x, _Failure):
                raise x.exc
            yield x
    finally:
        halt.set()
        thread.join(timeout=5)


def _pooled(
    items: Iterable[T],
    fn: Callable[[T], U],
    *,
    name: str,
    maxsize: int,
    clock: StageClock | None,
    stop: threading.Event | None,
    workers: int,
) -> Iterator[U]:
    """`threaded` with fn on `workers` threads: a feeder thread submits consecutive items to a pool, keeps
    at most `workers` of them in flight, and queues their results in submission order."""
    q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    halt = threading.Event()

    def timed(item: T) -> U:
        t0 = time.perf_counter()
        out = fn(item)
        if clock is not None:
            clock.add(name, time.perf_counter() - t0)
        return out

    def put(x: Any) -> bool:
        return _put(q, halt, x)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"stage-{name}")

    def run() -> None:
        pending: deque[Future[U]] = deque()
        try:
            it = iter(items)
            while not halt.is_set() and not (stop is not None and stop.is_set()):
                try:
                    item = next(it)
                except StopIteration:
                    break
                pending.append(pool.submit(timed, item))
                if len(pending) >= workers and not put(pending.popleft().result()):
                    return
            while pending and not halt.is_set():
                if not put(pending.popleft().result()):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            put(_Failure(exc))
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True)

    thread = threading.Thread(target=run, name=f"stage-{name}", daemon=True)
    thread.start()  # on the first next(): a stage never iterated starts no thread
    yield from _drain(q, halt, thread)
