"""HTTP for the kit: one httpx client, each dialect's key header, and the 429 handling a client owes a server.

A 429 is waited out for its `Retry-After` (seconds or an HTTP date; doubling from 1 s when absent, capped),
then the same request is sent again with the same headers, so a submit keeps its `Idempotency-Key`. A
connection error or timeout is retried the same way a few times. Every wait is counted for the report.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

# The header each vendor documents (HTTP header names are case-insensitive; we send each as written).
KEY_HEADERS = {"pixelcut": "X-API-KEY", "studio": "X-API-Key", "removebgvideo": "X-Api-Key"}
NO_KEY = object()  # key=NO_KEY: send no key header at all


@dataclass
class Reply:
    status: int
    headers: httpx.Headers
    body: Any  # parsed JSON, else None
    text: str
    waited_429: int = 0  # 429 answers waited out before this one

    @property
    def obj(self) -> dict[str, Any]:
        """The body when it is a JSON object, else {}."""
        return self.body if isinstance(self.body, dict) else {}

    def short(self) -> str:
        """Status and the error code or a clipped body, for the report's "got" column."""
        code = error_code(self.body)
        if code:
            return f"{self.status} {code}"
        text = " ".join(self.text.split())
        return f"{self.status} {text[:80]}{'…' if len(text) > 80 else ''}"


def error_code(body: Any) -> str | None:
    """The error code in any of the three dialects' shapes: {"error_code"}, {"error": {"code"}}, {"code"}."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error_code"), str):
        return body["error_code"]
    err = body.get("error")
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        return err["code"]
    return body.get("code") if isinstance(body.get("code"), str) else None


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Backoff:
    """What the kit waited for; the rate-limit cases report it."""

    waits_429: int = 0
    waited_s: float = 0.0
    retries_transport: int = 0
    log: list[str] = field(default_factory=list)


class Api:
    def __init__(
        self,
        base: str,
        key: str,
        *,
        timeout_s: float = 30.0,
        max_429_waits: int = 8,
        max_wait_s: float = 60.0,
        trust_env: bool = True,
    ):
        self.base = base.rstrip("/")
        self.key = key
        self.max_429_waits = max_429_waits
        self.max_wait_s = max_wait_s
        self.backoff = Backoff()
        self.http = httpx.Client(timeout=timeout_s, trust_env=trust_env, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        dialect: str = "removebgvideo",
        key: Any = None,
        headers: dict[str, str] | None = None,
        retry_429: bool = True,
        **kwargs: Any,
    ) -> Reply:
        """`key`: None is the kit's key, NO_KEY sends none, a string sends that one. `kwargs` go to httpx
        (json=, content=, data=, files=). With retry_429=False the first answer is returned as it is."""
        sent = dict(headers or {})
        token = self.key if key is None else key
        if token is not NO_KEY:
            sent[KEY_HEADERS[dialect]] = token
        waits = transport_tries = 0
        delay = 1.0
        while True:
            try:
                r = self.http.request(method, self.url(path), headers=sent, **kwargs)
            except httpx.TransportError as e:
                transport_tries += 1
                if transport_tries > 3:
                    raise
                self.backoff.retries_transport += 1
                self.backoff.log.append(f"{method} {path}: {type(e).__name__}, retried after {delay:g} s")
                time.sleep(delay)
                delay = min(delay * 2, self.max_wait_s)
                continue
            if r.status_code != 429 or not retry_429 or waits >= self.max_429_waits:
                return _reply(r, waits)
            waits += 1
            wait = retry_after_s(r.headers.get("Retry-After"))
            wait = min(self.max_wait_s, delay if wait is None else max(wait, 0.05))
            delay = min(delay * 2, self.max_wait_s)
            self.backoff.waits_429 += 1
            self.backoff.waited_s += wait
            time.sleep(wait)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def download(self, url: str, dest: Any) -> int:
        """GET a result URL (presigned: no key is sent) into `dest`; returns the byte count."""
        n = 0
        with self.http.stream("GET", self.url(url), timeout=120.0) as r, open(dest, "wb") as f:
            if r.status_code != 200:
                raise RuntimeError(f"result download answered {r.status_code}")
            for chunk in r.iter_bytes(1 << 20):
                f.write(chunk)
                n += len(chunk)
        return n


def _reply(r: httpx.Response, waits: int) -> Reply:
    try:
        body = r.json()
    except ValueError:
        body = None
    return Reply(r.status_code, r.headers, body, r.text, waits)
