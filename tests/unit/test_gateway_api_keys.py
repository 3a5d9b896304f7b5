"""API key format, hashing and owner names (services/gateway/api_keys.py); the store itself is exercised
against nats-server in tests/integration/test_contracts_*.py."""

from __future__ import annotations

import hashlib

import pytest
from starlette.datastructures import Headers

from services.gateway.api_keys import ApiKey, check_owner, hash_token, key_id_of, new_token
from services.gateway.auth import presented_key
from videobg.errors import InvalidInput

pytestmark = pytest.mark.unit


def test_new_tokens_are_unique_and_parse() -> None:
    tokens = [new_token() for _ in range(200)]
    assert len({t for _, t in tokens}) == 200
    for key_id, token in tokens:
        assert token.startswith(f"vbg_{key_id}_") and len(key_id) == 12
        assert key_id_of(token) == key_id
        assert key_id_of(f"  {token}\n") == key_id


@pytest.mark.parametrize(
    "token",
    [
        "",
        "vbg_",
        "sk_live_abc",
        "vbg_XYZ123456789_" + "A" * 43,
        "vbg_0123456789ab_short",
        "vbg_0123456789ab_" + "A" * 44,
    ],
)
def test_malformed_tokens_have_no_id(token: str) -> None:
    assert key_id_of(token) is None


def test_only_a_hash_is_kept() -> None:
    key_id, token = new_token()
    record = ApiKey(id=key_id, owner="acme", hash=hash_token(token), created="2026-01-01T00:00:00Z")
    assert record.hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(record.public()) and "hash" not in record.public()
    assert record.active


@pytest.mark.parametrize("owner", ["acme", "Team_7", "a", "x" * 64, "a-b"])
def test_owner_names(owner: str) -> None:
    assert check_owner(owner) == owner


@pytest.mark.parametrize("owner", ["", "anonymous", "x" * 65, "a.b", "a b", "-lead", "ü"])
def test_bad_owner_names(owner: str) -> None:
    with pytest.raises(InvalidInput):
        check_owner(owner)


class _Req:
    def __init__(self, headers: dict[str, str]):
        self.headers = Headers(headers)  # case-insensitive, as in a request


@pytest.mark.parametrize(
    "headers, key",
    [
        ({"X-API-Key": "k1"}, "k1"),
        ({"Authorization": "Bearer k2"}, "k2"),
        ({"Authorization": "bearer  k3 "}, "k3"),
        ({"Authorization": "Basic abc"}, ""),
        ({"X-API-Key": " ", "Authorization": "Bearer k4"}, "k4"),
        ({}, ""),
    ],
)
def test_presented_key(headers: dict[str, str], key: str) -> None:
    assert presented_key(_Req(headers)) == key  # type: ignore[arg-type]
