"""The JSON body a webhook receiver gets for one event of one job (shape in the package docstring)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.common.jobstore import now_iso
from services.common.record import Job
from services.gateway import results
from services.gateway.webhooks.signing import delivery_id

if TYPE_CHECKING:
    from services.gateway.jobs import Gateway

EVENT_OF_STATUS = {
    "processing": "job.started",
    "completed": "job.completed",
    "failed": "job.failed",
    "cancelled": "job.failed",
}


def _iso_from_ts(ts: Any) -> str:
    try:
        return results.iso(datetime.fromtimestamp(float(ts), UTC))
    except (TypeError, ValueError, OverflowError):
        return now_iso()


async def payload(gateway: Gateway, job: Job, event_name: str, event: dict[str, Any]) -> dict[str, Any]:
    status = str(event.get("status") or job.status)
    body: dict[str, Any] = {
        "event": event_name,
        "delivery_id": delivery_id(job.id, event_name),
        "job_id": job.id,
        "status": status,
        "created_at": _iso_from_ts(event.get("ts")),
        "result": None,
        "error": None,
    }
    if event_name == "job.completed":
        view = await results.result_view(gateway, job)
        if view:
            body["result"] = {
                "url": view["result_url"],
                "expires_at": view["result_url_expires_at"],
                "output_format": job.spec.output_format,
            }
    elif event_name == "job.failed":
        body["error"] = {
            "code": job.error_code or event.get("error_code") or status,
            "message": job.error or event.get("message") or f"The job {status}",
        }
    return body
