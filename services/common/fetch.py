"""Download a user-given URL to a file: streamed, with a size cap and a time limit, errors typed.

Every URL, the first and each redirect target (at most 5, followed by hand), passes `check_url` before a
request is made to it: the SSRF guard (services/common/ssrf.py) resolves the host once and refuses
loopback, private, link-local, metadata and other non-public addresses unless the operator's allow-list
names them. The request then goes to the vetted address itself, with the original host as Host header
and TLS server name, so the name is never resolved a second time (no DNS rebinding), and no connection
is ever reused across hops.

Status mapping: 404/410 -> NotFound; 408, 429 and 5xx -> Transient (retried); other non-2xx ->
InvalidInput; more than `max_bytes` (declared or streamed) -> TooLarge; connect/read failures and a
download slower than `timeout_s` -> Transient; a refused or unresolvable host -> InvalidInput.

Pace: a server that trickles (a byte every few seconds, headers included) must not hold an ingest worker
for long. Every read on the socket (`_Pace`, through httpcore's network-backend hook) is bounded by the
total deadline, and each `rate_window_s` the bytes received in that window must reach
`min_rate_bytes_s` x the window, else the download stops with a Transient naming the rate. httpx's own
per-read timeout alone resets on every byte, and its chunked iterator only looks at the clock once a
whole chunk has arrived.
Proxies from the environment are ignored (trust_env=False): what is fetched is what `check_url` saw.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from services.common import ssrf
from services.common.ssrf import AllowList, Target
from videobg.errors import InvalidInput, NotFound, TooLarge, Transient

log = logging.getLogger(__name__)

USER_AGENT = "videobg/0.1 (+https://github.com/videobg)"
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int  # bytes written
    content_type: str  # as the server declared it ("" when it did not)
    url: str  # the final URL, after redirects


def check_url(url: str, allow: AllowList | str | None = None, *, what: str = "file") -> Target:
    """The SSRF hook: raise InvalidInput (invalid_parameter) for a URL the service must not fetch, else
    return its vetted addresses. Opens no connection; resolves a host name once."""
    return ssrf.guard(url, allow, what=f"{what} URL")


def _redact(url: str) -> str:
    """scheme://host/path, without the query (it may hold a signature) for logs and messages."""
    p = urlsplit(url)
    host = f"[{p.hostname}]" if p.hostname and ":" in p.hostname else p.hostname
    return f"{p.scheme}://{host}{p.path}"


class _Pace:
    """The clock of one download, consulted by every socket read: total deadline and minimum rate."""

    def __init__(self, what: str, timeout_s: float, min_rate_bytes_s: float, window_s: float) -> None:
        self.what = what
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.min_rate = min_rate_bytes_s
        self.window_s = window_s
        self.window_end = time.monotonic() + window_s
        self.window_bytes = 0

    def read_timeout(self, asked: float | None) -> float:
        """How long the next read may block: until the deadline or the end of the rate window."""
        now = time.monotonic()
        if now >= self.deadline:
            raise Transient(f"Downloading the {self.what} took longer than {self.timeout_s:g} s")
        self._check_window(now)
        limit = min(self.deadline, self.window_end) - now
        return max(0.001, limit if asked is None else min(asked, limit))

    def got(self, n: int) -> None:
        self.window_bytes += n

    def _check_window(self, now: float) -> None:
        if now < self.window_end or self.min_rate <= 0:
            return
        if self.window_bytes < self.min_rate * self.window_s:
            raise Transient(
                f"Downloading the {self.what} was too slow: {self.window_bytes} bytes in {self.window_s:g} s "
                f"(at least {self.min_rate:g} bytes/s are needed)"
            )
        self.window_end, self.window_bytes = now + self.window_s, 0


class _PacedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, pace: _Pace) -> None:
        self._inner = inner
        self._pace = pace

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            limit = self._pace.read_timeout(timeout)
            try:
                data = self._inner.read(max_bytes, limit)
            except httpcore.ReadTimeout:
                if timeout is not None and limit >= timeout:
                    raise  # httpx's own read timeout
                continue  # the deadline or the end of a rate window: read_timeout decides
            self._pace.got(len(data))
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._pace.read_timeout(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _PacedStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._pace)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PacedBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, pace: _Pace) -> None:
        self._inner = inner
        self._pace = pace

    def connect_tcp(self, *args: Any, **kw: Any) -> httpcore.NetworkStream:
        return _PacedStream(self._inner.connect_tcp(*args, **kw), self._pace)

    def connect_unix_socket(self, *args: Any, **kw: Any) -> httpcore.NetworkStream:
        return _PacedStream(self._inner.connect_unix_socket(*args, **kw), self._pace)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _paced_transport(pace: _Pace) -> httpx.HTTPTransport:
    # No keep-alive: a pooled connection is keyed by address, and one made for another host name (its
    # TLS certificate checked against that name) must never carry this request.
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    pool = transport._pool  # httpx offers no public hook for httpcore's network backend
    assert isinstance(pool, httpcore.ConnectionPool) and hasattr(pool, "_network_backend")
    pool._network_backend = _PacedBackend(pool._network_backend, pace)
    return transport


def fetch_to_file(
    url: str,
    dest: str | Path,
    *,
    max_bytes: int,
    timeout_s: float = 300.0,
    connect_timeout_s: float = 10.0,
    min_rate_bytes_s: float = 64 * 1024,
    rate_window_s: float = 20.0,
    what: str = "file",
    allow: AllowList | str | None = None,
    client: httpx.Client | None = None,
) -> Fetched:
    """GET `url` into `dest` (written as dest.part, renamed when complete). `what` names the thing in
    error messages ("source video", "background image"); `allow` is the operator's allow-list (a CIDR and
    host-name string as in the settings, or an AllowList). The download must end within `timeout_s` and
    bring at least `min_rate_bytes_s` in every `rate_window_s` (module docstring); a `client` passed in
    (tests) brings its own timeouts instead."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(
        connect=connect_timeout_s, read=min(60.0, timeout_s), write=30.0, pool=connect_timeout_s
    )
    own = client is None
    http = client or httpx.Client(
        timeout=timeout,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        transport=_paced_transport(_Pace(what, timeout_s, min_rate_bytes_s, rate_window_s)),
    )
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            target = check_url(url, allow, what=what)
            with _errors(what, url), contextlib.closing(send_pinned(http, "GET", target)) as resp:
                if resp.is_redirect and "location" in resp.headers:
                    url = urljoin(url, resp.headers["location"])
                    continue
                _check_status(resp, what, url)
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise TooLarge(
                        f"The {what} is {int(declared) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB"
                    )
                size = _stream_to(resp, part, max_bytes, deadline, what)
                os.replace(part, dest)
                return Fetched(dest, size, resp.headers.get("content-type", ""), url)
        raise InvalidInput(f"The {what} URL redirects more than {_MAX_REDIRECTS} times")
    finally:
        part.unlink(missing_ok=True)
        if own:
            http.close()


def pinned_request(
    http: httpx.Client | httpx.AsyncClient,
    method: str,
    target: Target,
    address: ssrf.IPAddress,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Request:
    """A request to `address` itself, carrying the URL's host as Host header and TLS server name."""
    extensions = {"sni_hostname": target.sni} if target.sni else None
    return http.build_request(
        method,
        target.url_for(address),
        headers={**(headers or {}), "Host": target.host_header},
        content=content,
        extensions=extensions,
    )


def send_pinned(http: httpx.Client, method: str, target: Target, **kw: Any) -> httpx.Response:
    """Send to the target's vetted addresses in turn until one accepts the connection (a refused or
    unreachable address has received nothing, so trying the next is safe). Returns a streamed response:
    close it. `kw`: headers, content."""
    last: httpx.ConnectError | None = None
    for address in target.addresses:
        try:
            return http.send(pinned_request(http, method, target, address, **kw), stream=True)
        except httpx.ConnectError as e:
            last = e
    assert last is not None  # a Target has at least one address
    raise last


async def send_pinned_async(
    http: httpx.AsyncClient, method: str, target: Target, **kw: Any
) -> httpx.Response:
    """`send_pinned` for async callers (webhook delivery). Returns a streamed response: `aclose` it."""
    last: httpx.ConnectError | None = None
    for address in target.addresses:
        try:
            return await http.send(pinned_request(http, method, target, address, **kw), stream=True)
        except httpx.ConnectError as e:
            last = e
    assert last is not None
    raise last


def _check_status(resp: httpx.Response, what: str, url: str) -> None:
    code = resp.status_code
    if 200 <= code < 300:
        return
    where = _redact(url)
    if code in (404, 410):
        raise NotFound(f"The {what} was not found at {where} (HTTP {code})")
    if code in (408, 429) or code >= 500:
        raise Transient(f"Downloading the {what} from {where} failed with HTTP {code}")
    raise InvalidInput(f"The {what} could not be downloaded from {where} (HTTP {code})")


def _stream_to(resp: httpx.Response, path: Path, max_bytes: int, deadline: float, what: str) -> int:
    size = 0
    with open(path, "wb") as f:
        for chunk in resp.iter_bytes():  # as each network read decodes: the clock is seen on every one
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"The {what} is larger than the limit of {max_bytes / 1e6:.1f} MB")
            if time.monotonic() > deadline:
                raise Transient(f"Downloading the {what} took too long")
            f.write(chunk)
    return size


@contextlib.contextmanager
def _errors(what: str, url: str) -> Iterator[None]:
    """httpx failures -> typed errors; anything else (our own TooLarge, ...) passes through."""
    try:
        yield
    except httpx.HTTPError as exc:
        where = _redact(url)
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            raise InvalidInput(f"The {what} URL is not valid") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise Transient(f"Downloading the {what} from {where} timed out") from exc
        raise Transient(f"Downloading the {what} from {where} failed", detail=repr(exc)) from exc
