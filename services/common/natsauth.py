"""NATS users and what each may publish and subscribe: one table for the local stack's nats-server
(devstack/stack.py, the integration tests) and Kubernetes (deploy/k8s/base/nats.yaml, whose config a
unit test compares with `server_config`).

Every service connects as its own user (`nats://<role>:<password>@host:port`); no connection without
a user is accepted. What a role may touch, and why:

    gateway     writes the keys/credits bucket (vbg_keys; the only role that may), job records, events,
                vbg.work.ingest; reads events (settling credits, webhooks, Watch) and the work queue's
                gauges
    ingest      its durable consumer on vbg.work.ingest; publishes vbg.work.segment
    segmenter   its consumer on vbg.work.segment; publishes vbg.work.encode
    encoder     its consumer on vbg.work.encode
    compositor  no work subject (the encoder calls it over gRPC)
    (stages)    job records (vbg_jobs), their jobs' events, the work queue's gauges
    admin       everything: the operator's CLI (python -m services.gateway.admin), tests, drills

JetStream API subjects are per stream (`$JS.API.STREAM.INFO.<stream>`, `$JS.API.CONSUMER.*.<stream>...`,
`$JS.ACK.<stream>.<consumer>...`), so "stages get their subjects and buckets" is said with allow-lists;
anything not listed is refused by the server (a publish is dropped with a permissions violation, a
request times out). Replies come back on `_INBOX.>`, the only subscription most roles need.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from videobg import nats_subjects

ADMIN = "admin"
GATEWAY = "gateway"
STAGES = ("ingest", "segmenter", "compositor", "encoder")
ROLES = (ADMIN, GATEWAY, *STAGES)

# stage -> (its durable consumer on VBG_WORK, the work subject it hands on to)
_WORK: dict[str, tuple[str | None, str | None]] = {
    "ingest": (nats_subjects.CONSUMER_INGEST, nats_subjects.WORK_SEGMENT),
    "segmenter": (nats_subjects.CONSUMER_SEGMENT, nats_subjects.WORK_ENCODE),
    "encoder": (nats_subjects.CONSUMER_ENCODE, None),
    "compositor": (None, None),
}
_JOBS_KV = f"KV_{nats_subjects.JOBS_BUCKET}"
_KEYS_KV = f"KV_{nats_subjects.KEYS_BUCKET}"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()


def _stream_admin(stream: str) -> list[str]:
    """Create it, bring it up to date, read its info: every service ensures its streams at start."""
    return [f"$JS.API.STREAM.{op}.{stream}" for op in ("INFO", "CREATE", "UPDATE")]


def _readers(stream: str) -> list[str]:
    """Ephemeral and ordered consumers (KV reads and watches, event replays) and direct message reads."""
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
    ]


def _durable(stream: str, consumer: str) -> list[str]:
    """One durable pull consumer: create/bind it, fetch, ack/nak/term/in-progress."""
    return [
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
        f"$JS.API.CONSUMER.INFO.{stream}.{consumer}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _service_common() -> list[str]:
    """What every service does: its streams and the job records, events, the work queue's gauges."""
    out = [
        "$JS.API.INFO",
        "$JS.FC.>",
        f"$KV.{nats_subjects.JOBS_BUCKET}.>",
        f"{nats_subjects.EVENTS_PREFIX}.*",
    ]
    for stream in (nats_subjects.WORK_STREAM, nats_subjects.EVENTS_STREAM, _JOBS_KV):
        out += _stream_admin(stream)
    out += _readers(_JOBS_KV) + _readers(nats_subjects.EVENTS_STREAM)
    out += [
        f"$JS.API.CONSUMER.INFO.{nats_subjects.WORK_STREAM}.*",
        f"$JS.API.STREAM.MSG.GET.{nats_subjects.WORK_STREAM}",
    ]
    return out


def permissions(role: str) -> Permissions | None:
    """The role's permissions; None for admin (no restriction)."""
    if role == ADMIN:
        return None
    inbox = ("_INBOX.>",)
    if role == GATEWAY:
        publish = _service_common() + [nats_subjects.WORK_INGEST, f"$KV.{nats_subjects.KEYS_BUCKET}.>"]
        publish += _stream_admin(_KEYS_KV) + _readers(_KEYS_KV)
        publish += [  # durable consumers on events: the webhook dispatcher
            f"$JS.API.CONSUMER.DURABLE.CREATE.{nats_subjects.EVENTS_STREAM}.*",
            f"$JS.API.CONSUMER.MSG.NEXT.{nats_subjects.EVENTS_STREAM}.*",
            f"$JS.ACK.{nats_subjects.EVENTS_STREAM}.>",
        ]
        return Permissions(tuple(publish), (*inbox, nats_subjects.EVENTS_WILDCARD))
    if role not in _WORK:
        raise ValueError(f"unknown NATS role {role!r}; known: {', '.join(ROLES)}")
    consumer, hands_on = _WORK[role]
    publish = _service_common()
    if consumer:
        publish += _durable(nats_subjects.WORK_STREAM, consumer)
    if hands_on:
        publish.append(hands_on)
    # Said twice on purpose: nothing above allows them, and a later edit of the table must not either.
    deny = (f"$KV.{nats_subjects.KEYS_BUCKET}.>", f"$JS.API.*.*.{_KEYS_KV}", f"$JS.API.*.*.{_KEYS_KV}.>")
    return Permissions(tuple(publish), inbox, deny)


def _quote_list(items: tuple[str, ...], indent: str) -> str:
    """One subject a line, so that a review (and a diff of the Kubernetes config) reads them."""
    return "[\n" + "".join(f'{indent}  "{s}"\n' for s in items) + f"{indent}]"


def server_config(passwords: Mapping[str, str]) -> str:
    """The `authorization` block of a nats-server config: one user per role. A password that starts
    with `$` is written bare, as a reference to an environment variable (the Kubernetes config reads
    them from a Secret); any other is written quoted."""
    lines = ["authorization {", "  users = ["]
    for role in ROLES:
        pw = passwords[role]
        pw_text = pw if pw.startswith("$") else f'"{pw}"'
        perms = permissions(role)
        if perms is None:
            lines.append(f"    {{user: {role}, password: {pw_text}}}")
            continue
        ind = " " * 8
        lines += [
            f"    {{user: {role}, password: {pw_text}, permissions: {{",
            f"      publish: {{allow: {_quote_list(perms.publish, ind)}"
            + (f", deny: {_quote_list(perms.deny_publish, ind)}" if perms.deny_publish else "")
            + "}",
            f"      subscribe: {{allow: {_quote_list(perms.subscribe, ind)}}}",
            "    }}",
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def env_passwords(prefix: str = "NATS_PASSWORD_") -> dict[str, str]:
    """Environment references for `server_config`: $NATS_PASSWORD_GATEWAY, ... (Kubernetes)."""
    return {role: f"${prefix}{role.upper()}" for role in ROLES}


def with_user(url: str, user: str, password: str) -> str:
    """Each of a comma-separated list of nats:// URLs, with `user:password@` (replacing any)."""
    out = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        host = parts.netloc.rpartition("@")[2]
        out.append(urlunsplit((parts.scheme, f"{user}:{password}@{host}", parts.path, "", "")))
    return ",".join(out)


@dataclass(frozen=True)
class NatsAuth:
    """Passwords of every role for one nats-server (or cluster): random, URL-safe."""

    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(cls) -> NatsAuth:
        return cls({role: secrets.token_urlsafe(18) for role in ROLES})

    def url(self, base_url: str, role: str) -> str:
        """`base_url` (one URL or several, comma-separated) as `role` sees it."""
        return with_user(base_url, role, self.passwords[role])

    def config(self) -> str:
        return server_config(self.passwords)
