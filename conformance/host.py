"""How the server under test gets the kit's media, and the loopback receiver for its webhooks.

`FileHost` serves files on 127.0.0.1 (a free port) with HEAD and single byte ranges, as a CDN would, so a
server may probe a URL's size and header before fetching it; a "padded" entry is a real clip followed by an
MP4 `free` box up to a given size, streamed without being held in memory. It only helps a server on this
machine that is allowed to fetch loopback URLs (our local stack is). Otherwise the kit uploads its files
(`POST /v1/uploads`) and passes the URL the upload answers with.

`WebhookReceiver` records every POST it gets (headers and the raw body) and answers 200.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

LOOPBACK = "127.0.0.1"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class Entry:
    content_type: str
    path: Path | None = None  # a file on disk
    data: bytes = b""  # or bytes
    pad_to: int = 0  # >0: `path` followed by a `free` box header and zeros up to this many bytes
    pad_header: bytes = b""

    @property
    def size(self) -> int:
        if self.pad_to:
            return self.pad_to
        return self.path.stat().st_size if self.path is not None else len(self.data)

    def read(self, start: int, end: int) -> Any:
        """Yield the bytes [start, end) in chunks."""
        head = self.path.read_bytes() if self.path is not None else self.data
        if self.pad_to:
            head += self.pad_header
        pos = start
        while pos < end:
            if pos < len(head):
                chunk = head[pos : min(end, len(head), pos + (1 << 20))]
            else:
                chunk = bytes(min(end - pos, 1 << 20))
            yield chunk
            pos += len(chunk)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class FileHost:
    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range) for the report
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                name = urlsplit(self.path).path.lstrip("/")
                rng = self.headers.get("Range")
                host.requests.append((self.command, name, rng))
                entry = host.entries.get(name)
                if entry is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size, start, end, status = entry.size, 0, entry.size, 200
                m = _RANGE.match(rng or "")
                if m and (m.group(1) or m.group(2)):
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(size, int(m.group(2)) + 1) if m.group(2) else size
                    else:  # the last N bytes
                        start = max(0, size - int(m.group(2)))
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", entry.content_type)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
                self.end_headers()
                if not body:
                    return
                try:
                    for chunk in entry.read(start, end):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a server that stops reading at its size limit

        self._httpd = _Server((LOOPBACK, 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="kit-files", daemon=True)
        self._thread.start()

    def add(self, name: str, entry: Entry, tag: str = "") -> str:
        """Serve `entry` as /name; `tag` is a query string that makes the URL (and so a request body
        that carries it) unique to this run without changing what is served."""
        self.entries[name] = entry
        url = f"http://{LOOPBACK}:{self.port}/{quote(name)}"
        return f"{url}?run={tag}" if tag else url

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass
class Delivery:
    received: float
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class WebhookReceiver:
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with receiver._cond:
                    receiver.deliveries.append(
                        Delivery(time.time(), {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = _Server((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self._httpd.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="kit-webhooks", daemon=True)
        self._thread.start()

    def for_job(self, job_id: str) -> list[Delivery]:
        with self._cond:
            return [d for d in self.deliveries if isinstance(d.json, dict) and d.json.get("job_id") == job_id]

    def wait_event(self, job_id: str, event: str, timeout_s: float) -> Delivery | None:
        """The first delivery of `event` for the job, waiting up to timeout_s for it to arrive."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for d in self.deliveries:
                    body = d.json
                    if isinstance(body, dict) and body.get("job_id") == job_id and body.get("event") == event:
                        return d
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
