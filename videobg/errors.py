"""Typed errors and the ONE table that maps them to transports.

Core code raises these; gRPC servicers, the REST gateway and NATS workers translate them with
`ERROR_TABLE` and never invent their own codes. Transport libraries are not imported here: gRPC status
and NATS actions are named by string and resolved by the transport layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NatsAction(StrEnum):
    ACK = "ack"  # done (success or a permanent failure recorded on the job)
    NAK = "nak"  # retry later, with backoff
    TERM = "term"  # never redeliver: the input itself is bad


@dataclass(frozen=True)
class ErrorSpec:
    http_status: int
    grpc_status: str  # name of a grpc.StatusCode member
    nats: NatsAction


# public error_code -> how each transport reports it. The codes are the Pixelcut contract's enum plus the
# few the other dialects and the service itself need.
ERROR_TABLE: dict[str, ErrorSpec] = {
    "invalid_request_body": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "missing_parameter": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "invalid_parameter": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "unsupported_content_type": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "malformed_image": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "unsupported_image_format": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "file_size_too_large": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "resolution_too_high": ErrorSpec(400, "INVALID_ARGUMENT", NatsAction.TERM),
    "unknown_foreground": ErrorSpec(400, "FAILED_PRECONDITION", NatsAction.TERM),
    "invalid_auth_token": ErrorSpec(401, "UNAUTHENTICATED", NatsAction.TERM),
    "insufficient_api_credits": ErrorSpec(403, "PERMISSION_DENIED", NatsAction.TERM),
    "not_found": ErrorSpec(404, "NOT_FOUND", NatsAction.TERM),
    "method_not_allowed": ErrorSpec(405, "UNIMPLEMENTED", NatsAction.TERM),
    "conflict": ErrorSpec(409, "ALREADY_EXISTS", NatsAction.TERM),
    "rate_limit_exceeded": ErrorSpec(429, "RESOURCE_EXHAUSTED", NatsAction.NAK),
    "model_unavailable": ErrorSpec(503, "UNAVAILABLE", NatsAction.NAK),
    "transient_error": ErrorSpec(503, "UNAVAILABLE", NatsAction.NAK),
    "cancelled": ErrorSpec(409, "CANCELLED", NatsAction.TERM),
    "internal_error": ErrorSpec(500, "INTERNAL", NatsAction.NAK),
    # job outcomes (a job's error_code, rarely an HTTP answer): a stage ran past stage_deadline_s (retried;
    # once given up the job is charged for what was processed), or died max_deliver times / stopped making
    # progress (free: the failure is ours)
    "deadline_exceeded": ErrorSpec(504, "DEADLINE_EXCEEDED", NatsAction.NAK),
    "stage_crashed": ErrorSpec(500, "INTERNAL", NatsAction.TERM),
}


class VideoBgError(Exception):
    """Base of every error a user may see. `code` is the public error_code."""

    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, detail: str = ""):
        super().__init__(message)
        self.message = message  # what a client may read: never bucket names, object keys or reprs
        self.detail = detail  # what only the logs get (with the job id): the key, the server's answer
        if code is not None:
            if code not in ERROR_TABLE:
                raise ValueError(f"unknown error code {code!r}")
            self.code = code

    def __str__(self) -> str:
        """For logs: the message and the internal detail. Clients get `.message` (`to_dict`)."""
        return f"{self.message} ({self.detail})" if self.detail else self.message

    @property
    def spec(self) -> ErrorSpec:
        return ERROR_TABLE[self.code]

    def to_dict(self) -> dict[str, str]:
        return {"error": self.message, "error_code": self.code}


class InvalidInput(VideoBgError):
    code = "invalid_parameter"


class MissingParameter(VideoBgError):
    code = "missing_parameter"


class InvalidRequestBody(VideoBgError):
    code = "invalid_request_body"


class MalformedMedia(VideoBgError):
    """The file cannot be decoded (corrupt, truncated, not a video)."""

    code = "malformed_image"


class Unsupported(VideoBgError):
    """Decodable in principle but outside what the service accepts (container, codec)."""

    code = "unsupported_image_format"


class TooLarge(VideoBgError):
    code = "file_size_too_large"


class ResolutionTooHigh(VideoBgError):
    code = "resolution_too_high"


class NotFound(VideoBgError):
    code = "not_found"


class MethodNotAllowed(VideoBgError):
    """A route that exists, called with a method it does not take (REST only)."""

    code = "method_not_allowed"


class ModelUnavailable(VideoBgError):
    """Weights missing or unloadable: operator problem, retried once it is fixed."""

    code = "model_unavailable"


class Transient(VideoBgError):
    code = "transient_error"


class DeadlineExceeded(Transient):
    """A stage of a job ran past its deadline: retried like any transient failure, but when the job is
    given up it fails with this code (and is charged for the compute spent)."""

    code = "deadline_exceeded"


class StageCrashed(VideoBgError):
    """A stage died (no ack, no error) on every delivery of a job, or the job stopped making progress."""

    code = "stage_crashed"


class Unauthenticated(VideoBgError):
    code = "invalid_auth_token"


class InsufficientCredits(VideoBgError):
    code = "insufficient_api_credits"


class RateLimited(VideoBgError):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Conflict(VideoBgError):
    code = "conflict"


class Cancelled(VideoBgError):
    code = "cancelled"


def as_public(exc: BaseException) -> VideoBgError:
    """Any exception -> a VideoBgError; unknown ones become internal_error without leaking internals."""
    if isinstance(exc, VideoBgError):
        return exc
    return VideoBgError("Internal service error", code="internal_error")
