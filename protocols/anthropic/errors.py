"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, with its statuses.

For every route of the Messages API (app/errors.py picks it by route prefix), as the JSON body of
an error answer and as the `error` event of a stream that has begun. Anthropic names its errors
by status: `invalid_request_error` (400 and other 4xx), `authentication_error` (401),
`permission_error` (403), `not_found_error` (404), `request_too_large` (413),
`rate_limit_error` (429), `api_error` (500 and other 5xx), `timeout_error` (504) and
`overloaded_error` (529). The gateway at capacity (its turn slots and queue full) is
`overloaded_error` with status 529, as Anthropic answers when it is; a provider's 429 stays a
429 `rate_limit_error`.
"""

from __future__ import annotations

from typing import Any

from opencode_openai.core.errors import AuthenticationFailed, GatewayError, RateLimited

__all__ = ["OVERLOADED", "anthropic_error", "anthropic_status"]

#: Anthropic's status for "overloaded": the gateway has no turn slot for the request.
OVERLOADED = 529

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    OVERLOADED: "overloaded_error",
}

_AUTH_MESSAGE = (
    "Missing or incorrect API key. Send the gateway's key as `x-api-key: <key>` "
    "(ANTHROPIC_API_KEY) or `Authorization: Bearer <key>` (ANTHROPIC_AUTH_TOKEN); the gateway "
    "printed its key at start-up (or set one with --api-key / OPENAI_PROXY_API_KEY)."
)


def anthropic_status(error: GatewayError) -> int:
    """The status of `error` on an Anthropic route."""
    return OVERLOADED if isinstance(error, RateLimited) else error.status


def anthropic_error(error: GatewayError) -> dict[str, Any]:
    status = anthropic_status(error)
    kind = _TYPES.get(status) or ("invalid_request_error" if status < 500 else "api_error")
    message = _AUTH_MESSAGE if isinstance(error, AuthenticationFailed) else error.message
    return {"type": "error", "error": {"type": kind, "message": message}}
