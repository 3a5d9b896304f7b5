"""Download a user-given URL to a file: streamed, with a size cap and a time limit, errors typed.

Every URL, the first and each redirect target, passes `check_url` before a request is made to it. For now
that only admits http and https; the SSRF guards (private, loopback and link-local addresses, DNS
rebinding) will live in that one function.

Status mapping: 404/410 -> NotFound; 408, 429 and 5xx -> Transient (retried); other non-2xx ->
InvalidInput; more than `max_bytes` (declared or streamed) -> TooLarge; connect/read failures and a
download slower than `timeout_s` -> Transient; a host name that does not resolve -> InvalidInput.
Proxies from the environment are ignored (trust_env=False): what is fetched is what `check_url` saw.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

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


def check_url(url: str) -> str:
    """The SSRF hook: raise InvalidInput for a URL the service must not fetch. Today: http(s) with a host."""
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise InvalidInput(f"not a valid URL: {e}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput("only http:// and https:// URLs can be fetched")
    return url


def _redact(url: str) -> str:
    """scheme://host/path, without the query (it may hold a signature) for logs and messages."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{p.path}"


def fetch_to_file(
    url: str,
    dest: str | Path,
    *,
    max_bytes: int,
    timeout_s: float = 300.0,
    connect_timeout_s: float = 10.0,
    what: str = "file",
    client: httpx.Client | None = None,
) -> Fetched:
    """GET `url` into `dest` (written as dest.part, renamed when complete). `what` names the thing in
    error messages ("source video", "background image")."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + timeout_s
    timeout = httpx.Timeout(
        connect=connect_timeout_s, read=min(60.0, timeout_s), write=30.0, pool=connect_timeout_s
    )
    own = client is None
    http = client or httpx.Client(timeout=timeout, trust_env=False, headers={"User-Agent": USER_AGENT})
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            check_url(url)
            with _errors(what, url):
                with http.stream("GET", url, follow_redirects=False) as resp:
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
        if isinstance(exc, httpx.ConnectError) and _caused_by(exc, socket.gaierror):
            host = urlsplit(url).hostname
            raise InvalidInput(f"The host of the {what} URL ({host}) does not resolve") from exc
        if isinstance(exc, httpx.TimeoutException):
            raise Transient(f"Downloading the {what} from {where} timed out") from exc
        raise Transient(f"Downloading the {what} from {where} failed: {type(exc).__name__}") from exc


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
