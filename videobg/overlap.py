"""Overlapped stages: each stage runs in its own thread, joined by bounded queues, order preserved.

PyAV, OpenCV and PyTorch release the GIL in their heavy calls, so decode, inference, refinement and
encoding of different frames run at the same time and a job goes about as fast as its slowest stage.
Memory stays flat: at most `maxsize` items wait between two stages.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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
) -> Iterator[U]:
    """Yield fn(item) for each item, computed ahead in a background thread (fn=None: just prefetch).

    An exception in the thread is re-raised in the consumer; closing the consumer stops the thread.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    halt = threading.Event()

    def put(x: Any) -> bool:
        while not halt.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

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
    thread.start()
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
