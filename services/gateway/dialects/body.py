"""Reading a dialect's request parameters: JSON object or multipart form, with the public error codes.

Checked in this order:

    empty body                                  -> invalid_request_body
    Content-Type not JSON or multipart/form-data -> unsupported_content_type
    JSON that does not parse, or is not an object -> invalid_request_body
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from videobg.errors import InvalidRequestBody, VideoBgError

JSON = "application/json"
MULTIPART = "multipart/form-data"


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_params(request: Request, max_bytes: int) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise InvalidRequestBody(f"The request body is larger than {max_bytes} bytes")
    body = await request.body()  # cached: request.form() below parses the same bytes
    if len(body) > max_bytes:
        raise InvalidRequestBody(f"The request body is larger than {max_bytes} bytes")
    if not body.strip():
        raise InvalidRequestBody("The request body was empty")
    kind = media_type(request)
    if kind == JSON:
        try:
            params = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidRequestBody(f"The request body is not valid JSON: {e}") from None
        if not isinstance(params, dict):
            raise InvalidRequestBody("The request body must be a JSON object")
        return params
    if kind == MULTIPART:
        try:
            form = await request.form()
        except Exception as e:  # malformed boundaries and parts: python-multipart raises various types
            raise InvalidRequestBody(f"The multipart body could not be parsed: {e}") from None
        return {k: v for k, v in form.multi_items()}
    raise VideoBgError(
        f"Unsupported Content-Type {kind or '(none)'!r}: send {JSON} or {MULTIPART}",
        code="unsupported_content_type",
    )
