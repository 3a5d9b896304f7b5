"""API keys, kept in the JetStream KV bucket `vbg_keys` so every gateway replica sees the same keys.

A key reads `vbg_<id>_<secret>`: `id` is 12 hex digits and names the key in logs, the admin CLI and the
bucket (`key.<id>`); `secret` is 32 random bytes (base64url). Only sha256 of the whole key is stored:
the secret has 256 bits of entropy, so a fast hash is enough (no password stretching needed), and a
stolen bucket gives no usable key. The key itself is shown once, by `create`, and never logged.

The same bucket holds the credit accounts (`account.<owner>`, services/gateway/credits.py). Both kinds
of record are JSON documents changed by compare-and-set on the KV revision (`update_doc`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.common import bus, jobstore
from services.common.jobstore import iter_docs, now_iso
from videobg import nats_subjects
from videobg.errors import Conflict, InvalidInput, NotFound, Transient, Unauthenticated

BUCKET = nats_subjects.KEYS_BUCKET
KEY_PREFIX = "vbg"
_TOKEN = re.compile(r"^vbg_(?P<id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
_KEY_ID = re.compile(r"[0-9a-f]{12}")
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
RESERVED_OWNERS = frozenset({"anonymous"})  # the owner of unauthenticated jobs when auth is off
NOT_FOUND_MESSAGE = "API Token not found"  # the Pixelcut contract's wording, for every bad key


# --- documents in the bucket, changed by compare-and-set ------------------------------------------------


def nats_errors(what: str) -> contextlib.AbstractContextManager[None]:
    return jobstore.nats_errors(what, store="key store")


async def open_bucket(js: JetStreamContext, bucket: str = BUCKET) -> KeyValue:
    """The bucket, created on first use (idempotent: every replica may call it). The services create it
    at start (bus.ensure_streams, with their replica setting); this covers the admin CLI run first, with
    the replica count the server suggests (bus.auto_replicas)."""
    with nats_errors("open bucket"):
        try:
            return await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            await bus.ensure_kv(js, bucket, replicas=0)
            return await js.key_value(bucket)


async def get_doc(kv: KeyValue, key: str) -> tuple[dict[str, Any], int]:
    """(document, revision); NotFound when the key is absent or deleted."""
    try:
        with nats_errors(f"get {key}"):
            entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError as e:  # also raised for deleted keys
        raise NotFound(f"{key} not found") from e
    return json.loads(entry.value or b"{}"), entry.revision or 0


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


async def update_doc(
    kv: KeyValue,
    key: str,
    fn: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    *,
    attempts: int = 50,
) -> dict[str, Any] | None:
    """Read-modify-write with compare-and-set. `fn` gets a copy of the document (None when absent) and
    returns the new one, or None to leave it; it is called again after a lost race, so it must be a pure
    function of the document. Returns the document as stored (None if absent and left absent)."""
    for _ in range(attempts):
        try:
            current, revision = await get_doc(kv, key)
        except NotFound:
            current, revision = None, 0
        new = fn(copy.deepcopy(current))
        if new is None or new == current:
            return current
        new["updated"] = now_iso()
        try:
            with nats_errors(f"update {key}"):
                if revision:
                    await kv.update(key, _encode(new), last=revision)
                else:
                    await _create(kv, key, _encode(new))
            return new
        except nats.js.errors.KeyWrongLastSequenceError:
            continue
    raise Transient(f"{key}: update kept conflicting after {attempts} attempts")


async def _create(kv: KeyValue, key: str, value: bytes) -> None:
    """Store only if absent (or deleted); KeyWrongLastSequenceError if it exists."""
    await kv.create(key, value)


# --- keys ------------------------------------------------------------------------------------------------


def check_owner(owner: str) -> str:
    if not isinstance(owner, str) or not _OWNER.match(owner):
        raise InvalidInput(f"owner {owner!r} must be 1..64 of [A-Za-z0-9_-], starting with a letter or digit")
    if owner in RESERVED_OWNERS:
        raise InvalidInput(f"owner {owner!r} is reserved")
    return owner


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """(key id, the whole key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The id in a well-formed key, else None (nothing about a malformed key is worth looking up)."""
    m = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    return m["id"] if m else None


@dataclass(frozen=True)
class ApiKey:
    id: str
    owner: str
    hash: str
    created: str
    revoked: str = ""  # ISO time of revocation; "" while the key is valid
    note: str = ""

    @property
    def active(self) -> bool:
        return not self.revoked

    def public(self) -> dict[str, Any]:
        """What the admin CLI shows: everything but the hash."""
        return {k: v for k, v in asdict(self).items() if k != "hash"}


def _doc_key(key_id: str) -> str:
    return f"key.{key_id}"


class KeyStore:
    def __init__(self, js: JetStreamContext, bucket: str = BUCKET, *, cache_s: float = 5.0):
        self._js = js
        self._bucket_name = bucket
        self._kv: KeyValue | None = None
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey]] = {}

    async def bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await open_bucket(self._js, self._bucket_name)
        return self._kv

    async def create(self, owner: str, note: str = "") -> tuple[ApiKey, str]:
        """A new key for `owner`: (its record, the key itself: shown once, never stored)."""
        check_owner(owner)
        kv = await self.bucket()
        key_id, token = new_token()
        record = ApiKey(id=key_id, owner=owner, hash=hash_token(token), created=now_iso(), note=note)
        try:
            with nats_errors(f"create key {key_id}"):
                await _create(kv, _doc_key(key_id), _encode(asdict(record)))
        except nats.js.errors.KeyWrongLastSequenceError as e:  # 48 random bits collided: just retry
            raise Conflict(f"key id {key_id} exists; try again") from e
        return record, token

    async def get(self, key_id: str) -> ApiKey:
        try:
            doc, _ = await get_doc(await self.bucket(), _doc_key(key_id))
        except NotFound:
            raise NotFound(f"key {key_id} not found") from None
        return ApiKey(**{k: v for k, v in doc.items() if k in ApiKey.__dataclass_fields__})

    async def list(self) -> list[ApiKey]:
        keys = [
            ApiKey(**{k: v for k, v in doc.items() if k in ApiKey.__dataclass_fields__})
            async for _, doc in iter_docs(self._js, self._bucket_name, "key.")
        ]
        return sorted(keys, key=lambda k: (k.owner, k.created))

    async def revoke(self, key_id: str) -> ApiKey:
        if not _KEY_ID.fullmatch(key_id):
            raise NotFound(f"key {key_id!r} not found")
        await self.get(key_id)  # NotFound for an unknown id

        def revoke(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None or doc.get("revoked"):
                return None
            return {**doc, "revoked": now_iso()}

        await update_doc(await self.bucket(), _doc_key(key_id), revoke)
        self._cache.pop(key_id, None)
        return await self.get(key_id)

    async def verify(self, token: str) -> ApiKey:
        """The key's record if `token` is a valid, unrevoked key; Unauthenticated otherwise. A verified
        key is cached for `cache_s`, so a revocation reaches every replica within that time."""
        key_id = key_id_of(token)
        if key_id is None:
            raise Unauthenticated(NOT_FOUND_MESSAGE)
        digest = hash_token(token.strip())
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.cache_s:
            record = cached[1]
        else:
            try:
                record = await self.get(key_id)
            except NotFound:
                raise Unauthenticated(NOT_FOUND_MESSAGE) from None
            if self.cache_s > 0:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key_id] = (now, record)
        if not hmac.compare_digest(record.hash, digest) or not record.active:
            raise Unauthenticated(NOT_FOUND_MESSAGE)
        return record
