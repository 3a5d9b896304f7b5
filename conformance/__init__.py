"""A conformance kit for the three vendor dialects, as an outside client: `python -m conformance --help`.

It runs the seeds' client flows (submit, poll, download and decode, every documented error, 401/403/429
with backoff, drafts, uploads, webhooks) against any base URL and prints one row per case: the case, the
seed line it checks (quoted), what the server did, pass/fail. It needs only httpx and PyAV (with numpy)
and imports nothing from the service, so it can be pointed at a vendor's endpoint with your own key.
See README.md beside this file.
"""
