"""A loopback HTTP server that answers slowly on purpose: one byte every `every_s` seconds, of the header
or of the body. Used by the slow-source and slow-webhook-receiver tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

BODY_LENGTH = 1_000_000


@dataclass
class Trickle:
    url: str
    connections: int = 0
    bytes_sent: int = 0
    closed: threading.Event = field(default_factory=threading.Event)  # a client hung up on us
    stopping: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """End every trickle now (the connections close)."""
        self.stopping.set()


def _serve_one(
    conn: socket.socket, state: Trickle, stop: threading.Event, every_s: float, where: str
) -> None:
    with conn:
        conn.settimeout(5.0)
        with contextlib.suppress(OSError):
            conn.recv(65536)  # the request (small: one read is enough for these tests)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {BODY_LENGTH}\r\nContent-Type: video/mp4\r\n\r\n".encode()
        slow = head if where == "header" else b"x" * BODY_LENGTH
        try:
            if where == "body":
                conn.sendall(head)
            for i in range(len(slow)):
                if stop.wait(every_s):
                    return
                conn.sendall(slow[i : i + 1])
                state.bytes_sent += 1
        except OSError:
            state.closed.set()


@contextlib.contextmanager
def trickling_server(*, every_s: float = 0.5, where: str = "body") -> Iterator[Trickle]:
    """Serve on 127.0.0.1 (a free port) until the block ends; every connection gets a trickle."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    state = Trickle(url=f"http://127.0.0.1:{listener.getsockname()[1]}/clip.mp4")
    stop = state.stopping
    workers: list[threading.Thread] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            state.connections += 1
            t = threading.Thread(target=_serve_one, args=(conn, state, stop, every_s, where), daemon=True)
            t.start()
            workers.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield state
    finally:
        stop.set()
        acceptor.join(5)
        for t in workers:
            t.join(5)
        listener.close()
