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

import httpx

from services.common import ssrf
from services.common.ssrf import AllowList, Target
from videobg.errors import InvalidInput, NotFound, TooLarge, Transient

log = logging.getLogger(__name__)

USER_AGENT = "videobg/0.1 (+https://github.com/videobg)"
_CHUNK = 1024 * 1024
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


def fetch_to_file(
    url: str,
    dest: str | Path,
    *,
    max_bytes: int,
    timeout_s: float = 300.0,
    connect_timeout_s: float = 10.0,
    what: str = "file",
    allow: AllowList | str | None = None,
    client: httpx.Client | None = None,
) -> Fetched:
    """GET `url` into `dest` (written as dest.part, renamed when complete). `what` names the thing in
    error messages ("source video", "background image"); `allow` is the operator's allow-list (a CIDR and
    host-name string as in the settings, or an AllowList)."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(
        connect=connect_timeout_s, read=min(60.0, timeout_s), write=30.0, pool=connect_timeout_s
    )
    own = client is None
    # No keep-alive: a pooled connection is keyed by address, and one made for another host name (its
    # TLS certificate checked against that name) must never carry this request.
    http = client or httpx.Client(
        timeout=timeout,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_keepalive_connections=0),
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
        for chunk in resp.iter_bytes(_CHUNK):
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
        raise Transient(f"Downloading the {what} from {where} failed: {type(exc).__name__}") from exc
