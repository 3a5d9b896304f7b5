"""Operator CLI for API keys and credits (the `vbg_keys` KV bucket on the gateway's NATS).

    python -m services.gateway.admin create-key --owner acme [--credits 600] [--note "ci"]
    python -m services.gateway.admin list-keys [--owner acme]
    python -m services.gateway.admin revoke-key 3f2a9c01b7de
    python -m services.gateway.admin add-credits --owner acme --credits 300     (negative takes back)
    python -m services.gateway.admin show-account --owner acme

NATS is `--nats-url` (the admin user's: `nats://admin:<password>@nats:4222`), else the gateway's own
VBG_GATEWAY_NATS_URL with its NATS user (VBG_GATEWAY_NATS_USER / _PASSWORD), which may write the keys.
`--json` prints one JSON object per command for scripts. `create-key` prints the key once: only its sha256 is stored, so a lost
key cannot be shown again (revoke it and create another). Programs (the local stack) call `create_key`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from nats.js import JetStreamContext

from services.common import bus
from services.gateway.api_keys import KeyStore
from services.gateway.credits import Ledger
from services.gateway.settings import GatewaySettings
from videobg.errors import VideoBgError


async def create_key(
    js: JetStreamContext, owner: str, credits: float = 0.0, note: str = ""
) -> dict[str, Any]:
    """A new key for `owner` (and `credits` added to the owner's account): the key is in ["key"]."""
    record, token = await KeyStore(js).create(owner, note=note)
    ledger = Ledger(js)
    account = await ledger.add(owner, credits) if credits else await ledger.account(owner)
    return {**record.public(), "key": token, "credits": account.view()}


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    # --nats-url (with the admin user's credentials in it), else the gateway's own NATS user and URL:
    # the gateway's user may write the keys bucket (services/common/natsauth.py)
    own = GatewaySettings()
    user, password = ("", "") if args.nats_url else (own.nats_user, own.nats_password)
    nc = await bus.connect(
        args.nats_url or own.nats_url, name="vbg-admin", initial_attempts=2, user=user, password=password
    )
    try:
        js = nc.jetstream()
        keys, ledger = KeyStore(js), Ledger(js)
        if args.command == "create-key":
            return await create_key(js, args.owner, args.credits, args.note)
        if args.command == "list-keys":
            listed = [k.public() for k in await keys.list() if args.owner in (None, k.owner)]
            return {"keys": listed}
        if args.command == "revoke-key":
            return (await keys.revoke(args.key_id)).public()
        if args.command == "add-credits":
            return {"owner": args.owner, "credits": (await ledger.add(args.owner, args.credits)).view()}
        if args.command == "show-account":
            return {"owner": args.owner, "credits": (await ledger.account(args.owner)).view()}
        raise AssertionError(args.command)
    finally:
        await nc.close()


def _print(command: str, result: dict[str, Any]) -> None:
    if command == "list-keys":
        print(f"{'key id':<14}{'owner':<24}{'created':<30}revoked")
        for k in result["keys"]:
            print(f"{k['id']:<14}{k['owner']:<24}{k['created']:<30}{k['revoked'] or '-'}")
        return
    for name, value in result.items():
        if name == "key":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"{name:<10}{value}")
    if "key" in result:
        print(f"{'key':<10}{result['key']}")
        print("\nthe key is shown only this once: store it now", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.gateway.admin", description=__doc__.split("\n\n")[0])
    p.add_argument("--nats-url", help="default: VBG_GATEWAY_NATS_URL or nats://127.0.0.1:4222")
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create-key", help="create an API key for an owner")
    c.add_argument("--owner", required=True)
    c.add_argument("--credits", type=float, default=0.0, help="credits to add to the owner's account")
    c.add_argument("--note", default="", help="free text kept with the key (what it is for)")
    ls = sub.add_parser("list-keys", help="list keys (ids, owners, revocation; never the keys)")
    ls.add_argument("--owner")
    r = sub.add_parser("revoke-key", help="revoke a key by id (takes effect within the key cache time)")
    r.add_argument("key_id")
    a = sub.add_parser("add-credits", help="add (or, negative, take back) credits")
    a.add_argument("--owner", required=True)
    a.add_argument("--credits", type=float, required=True)
    s = sub.add_parser("show-account", help="an owner's balance, reservations and usage")
    s.add_argument("--owner", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.getLogger("services.common.bus").setLevel(logging.ERROR)  # not "disconnected" on our own close
    try:
        result = asyncio.run(_run(args))
    except VideoBgError as e:
        print(f"error: {e.code}: {e.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(args.command, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
