"""Webhooks (this package: `signing` the secrets and signatures, `payload` what a receiver gets,
`dispatch` the delivery loop, `routes` the caller's secret endpoint): job.started, job.completed and job.failed POSTed to a job's `webhook_url`, signed, retried.

What a receiver gets (one JSON object per request, Content-Type application/json):

    {"event": "job.completed", "delivery_id": "...", "job_id": "...", "status": "completed",
     "created_at": "2026-05-01T12:00:00Z",              # when the job changed, not when this was sent
     "result": {"url": "...", "expires_at": "...", "output_format": "mp4_h264"} | null,
     "error": {"code": "...", "message": "..."} | null}

    X-Videobg-Event: job.completed
    X-Videobg-Delivery: <delivery_id>         the same on every retry of this event: dedupe on it
    X-Videobg-Timestamp: <unix seconds>       when this attempt was signed
    X-Videobg-Signature: v1=<hex>             HMAC-SHA256(secret, f"{timestamp}.{raw body}")

job.started goes out when the job enters processing, job.completed / job.failed when it ends (a
cancelled job ends as job.failed, status "cancelled", error code "cancelled"). The secret is per owner,
derived from the `webhook_secret` setting (`owner_secret`); a caller reads its own from
GET /v1/webhooks/secret. `verify` is the receiver's side, also spelled out in docs/API.md.

Delivery never holds up a job: the stages only publish events (vbg.events.{job_id}); this dispatcher, run
by the gateway, reads them from a durable JetStream consumer shared by all gateway replicas. A job's
events are handled in order, different jobs' concurrently. An attempt that fails (connection error,
a receiver slower than `webhook_timeout_s` for the whole attempt, any non-2xx) is retried by nak-ing the event with an exponential delay (`webhook_backoff_s`,
doubling, capped), up to `webhook_max_attempts`; then it is given up. Each attempt is written to the
job record:

    job.webhook (record.WebhookState): event, attempts, last_status, delivered    # the latest event's
        .events["job.started"] (record.WebhookDelivery): delivery_id, seq, attempts, last_status,
                                                         delivered, gave_up, last_error, ...

The record also makes delivery at-least-once rather than more-than-once-per-progress-event: the first
event message of a kind claims it (`seq`), later ones of the same kind are acked at once, and a
redelivered message whose event was delivered is acked without a request. A crash between a receiver's
2xx and the record update sends that event again, with the same delivery id.

Webhook URLs pass the SSRF guard (services/common/ssrf.py) at submit (`ssrf.check_webhook_url`, from Gateway.create) and again at
every attempt, against the gateway's `fetch_allow`; a refused URL is given up at once. Requests go to the
vetted address only, no redirects are followed.
"""
