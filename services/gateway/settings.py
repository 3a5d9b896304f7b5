"""Gateway settings (env prefix VBG_GATEWAY_): the shared service fields, the REST listener, and the public
API's guards: API keys, credits, rate limits (see services/gateway/auth.py, credits.py, ratelimit.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.common.ssrf import AllowSetting

# removebgvideo's published rates, credits per minute of (trimmed) source video
DEFAULT_CREDITS_PER_MINUTE = {"original": 60.0, "light": 45.0, "human": 45.0, "pro": 180.0}


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VBG_GATEWAY_", extra="ignore")

    http_host: str = "127.0.0.1"  # address the REST server binds (0.0.0.0 in a pod)
    http_port: int = 8080  # 0: any free port (tests)
    grpc_port: int = 50051  # the gRPC Jobs API
    result_url_ttl_s: float = 3600.0  # lifetime of a presigned result URL handed to a client
    max_body_bytes: int = 1024 * 1024  # request bodies are small JSON / form fields, never video
    watch_poll_s: float = 1.0  # Watch re-reads the record this often, in case a stage ends without an event

    # API keys. false: a request without a key is the anonymous owner (unmetered, not rate limited); a
    # key that is sent is still checked. The local demo stack runs with false.
    auth_required: bool = True
    # gRPC Jobs takes the same keys (metadata x-api-key or authorization: Bearer). true: a gRPC call
    # without a key is a trusted internal caller (anonymous owner, unmetered, sees every job) even when
    # keys are required. Only for a gRPC port that the network confines to trusted callers.
    grpc_allow_anonymous: bool = False
    key_cache_s: float = 5.0  # a verified key is trusted this long per replica (revocation takes as long)

    # The submit probe (services/gateway/precheck.py): refuse at submit what the source's bytes prove is
    # over a limit, within this budget (0: off, ingest checks everything); a source up to
    # submit_probe_bytes is read whole and probed exactly (its trimmed length is then what is reserved)
    submit_probe_s: float = 3.0
    submit_probe_bytes: int = 16 * 1024 * 1024  # how much of a source the submit probe reads (see above)

    # An identical submit body from the same key within this many seconds is the same request (same job,
    # `Idempotent-Replayed: true`), with or without an Idempotency-Key; 0 turns it off (jobs.Gateway._implicit)
    implicit_idempotency_s: float = 300.0

    # Per-key token bucket, per gateway replica (N replicas admit up to N times this).
    rate_limit_per_s: float = 10.0  # sustained requests per second per key; 0 turns rate limiting off
    rate_limit_burst: int = 20  # requests a key may make at once after being idle
    # Failed authentications per client address (REST and gRPC): past the burst, every request from that
    # address is refused (429) until the bucket refills. Behind a proxy the address is the proxy's unless
    # it forwards X-Forwarded-For from an address uvicorn trusts (--forwarded-allow-ips).
    auth_failures_per_s: float = 0.2  # sustained failed attempts per second per address; 0 turns it off
    auth_failures_burst: int = 20  # failed attempts an address may make at once

    # Credits: per second of trimmed source, at the model's rate. A job is refused (403) when the caller's
    # available credits do not cover its reservation: the trimmed span when `end` is given, else the longest
    # input accepted (VIDEOBG_MAX_DURATION_S, the one setting ingest also enforces).
    credits_per_minute: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_CREDITS_PER_MINUTE))
    # What a job costs in money, per second of trimmed source, by service (dialect); shown on the job.
    # The seed prices studio-background at $0.06/s; the other two dialects bill in credits only.
    price_per_second: dict[str, float] = Field(default_factory=lambda: {"studio-background": 0.06})
    price_currency: str = "USD"  # the currency of price_per_second
    settle_sweep_s: float = 30.0  # how often reservations of finished (or never created) jobs are settled
    orphan_reservation_s: float = 300.0  # a reservation whose job does not exist is released after this
    # a processing job whose record has not changed for this long is failed (stage_crashed) by the sweep
    # above (0: never). Running stages write progress every few frames, so a job stays still this long
    # only when its stage is gone, or while it waits behind a backlog of more than this: keep it well
    # above the stage deadline (15 min) and the longest queue wait you tolerate.
    job_stall_s: float = 3600.0
    max_open_drafts: int = 100  # drafts (auto_start false) a key may hold at once; 0: no cap
    # Retention (besides job records, VBG_JOB_RETENTION_S): uploads and job files (source, mattes,
    # result) in S3 are deleted this long after they were written, by a sweep every retention_sweep_s
    upload_retention_s: float = 24 * 3600.0
    retention_sweep_s: float = 3600.0  # 0: no sweep (an S3 lifecycle rule may do it instead)

    # Uploads (services/gateway/uploads.py), webhooks (webhooks/), and the SSRF allow-list for webhook URLs

    # The gateway's external base URL ("https://api.example.com") for the URLs it hands out (uploads);
    # "" uses the URL the client called. Upload URLs on this host are read from S3, never fetched.
    public_url: str = ""
    upload_max_bytes: int = 100 * 1024 * 1024  # past this an upload is refused while it streams
    upload_timeout_s: float = 600.0  # one upload may take this long
    fetch_allow: AllowSetting = ""  # CIDRs / host names webhook URLs may reach although not public
    webhooks_enabled: bool = True  # run the webhook dispatcher in this gateway
    # Signs webhooks (per-owner secrets derive from it): one per deployment, the same in every replica
    # (a Kubernetes Secret). Required when keys are required; "" with keys off = random per process.
    webhook_secret: str = ""
    webhook_timeout_s: float = 10.0  # one delivery attempt
    webhook_max_attempts: int = 8  # then the delivery is given up and recorded so
    webhook_backoff_s: float = 2.0  # delay after the first failed attempt; doubles each time
    webhook_backoff_max_s: float = 600.0  # the longest delay between attempts


MIN_WEBHOOK_SECRET_CHARS = 16


def check_deployable(settings: GatewaySettings) -> None:
    """Refuse to start a gateway that takes keys (so, strangers' jobs) without a deployment-wide webhook
    secret: a random one per replica would sign the same job's callbacks differently on each replica,
    and change on every restart, so receivers could verify none of them."""
    if not settings.auth_required:
        return
    if not settings.webhook_secret:
        raise ValueError(
            "VBG_GATEWAY_WEBHOOK_SECRET is required when API keys are required (auth_required): set one "
            "secret for the whole deployment (a Kubernetes Secret), the same in every gateway replica"
        )
    if len(settings.webhook_secret) < MIN_WEBHOOK_SECRET_CHARS:
        raise ValueError(
            f"VBG_GATEWAY_WEBHOOK_SECRET must have at least {MIN_WEBHOOK_SECRET_CHARS} characters"
        )
