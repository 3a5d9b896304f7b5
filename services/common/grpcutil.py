"""gRPC server plumbing shared by every service: health checking, message caps, error mapping.

`build_server` binds the address (port 0 picks a free one, so tests run in parallel) and returns the
server with its port; handlers raise `videobg.errors` exceptions and `abort_with` turns them into the
status the one error table names.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from videobg.errors import VideoBgError, as_public

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # no message is larger; frames travel as bands of <= 8 MiB
BAND_BYTES = 8 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    err = as_public(exc)
    return grpc.StatusCode[err.spec.grpc_status], f"{err.code}: {err.message}"


def abort_with(context: grpc.ServicerContext, exc: BaseException) -> None:
    code, details = status_for(exc)
    if not isinstance(exc, VideoBgError):
        log.exception("unexpected error in a handler")
    context.abort(code, details)


def mapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a servicer method (unary or server-streaming) so typed errors become gRPC statuses."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterable[Any]:
            try:
                yield from fn(self, request, context)
            except Exception as exc:  # noqa: BLE001
                abort_with(context, exc)

        return stream

    @functools.wraps(fn)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except Exception as exc:  # noqa: BLE001
            abort_with(context, exc)

    return unary


def error_from_rpc(exc: grpc.RpcError) -> VideoBgError:
    """The other direction: a caller turns a failed RPC back into the typed error it carried."""
    details = exc.details() or ""
    code, _, message = details.partition(": ")
    try:
        return VideoBgError(message or details, code=code)
    except ValueError:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return VideoBgError(f"stage unavailable: {details}", code="transient_error")
        return VideoBgError(details or "internal error", code="internal_error")


def build_server(
    host: str, port: int, register: Callable[[grpc.Server], Iterable[str]], *, workers: int = 8
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """register(server) adds the servicers and returns their full service names (for health)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=CHANNEL_OPTIONS)
    names = list(register(server))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"could not bind gRPC on {host}:{port}")
    for name in [*names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, health_servicer


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
