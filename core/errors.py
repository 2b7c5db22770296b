"""The gateway's errors, and the one place that renders them in OpenAI's shape.

    GatewayError                      500 server_error
    ├── InvalidRequest                400 invalid_request_error
    │   └── UnsupportedParameter      400 (sets `param`)
    ├── AuthenticationFailed          401 invalid_api_key
    ├── ClientDisconnected            499 (the client went away; nobody reads it)
    ├── NotFound                      404
    │   └── ModelNotFound             404 model_not_found
    ├── PayloadTooLarge               413
    ├── UnsupportedMediaType          415
    ├── RateLimited                   429 rate_limit_exceeded (the gateway at capacity)
    ├── KeyLimitReached               429 rate_limit_exceeded (a key's own limit)
    ├── StoreUnavailable              503 store_unavailable (the shared store, Redis)
    └── BackendError                  502 upstream_error
        ├── BackendUnavailable        503 backend_unavailable
        │   └── Misconfigured         503 misconfigured (refused at start-up)
        ├── BackendTimeout            504 timeout
        └── UpstreamFailed            502 (status taken from the provider's answer)

Handlers and the backend raise these; `as_gateway_error` turns any exception into one of them
(and logs it), and each protocol renders it in its own shape, for a JSON reply and for an error
event in a stream alike (protocols/openai_errors.py; app/errors.py picks the route's shape).
"""

from __future__ import annotations

import logging
import math

__all__ = [
    "AuthenticationFailed",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "ClientDisconnected",
    "GatewayError",
    "InternalError",
    "InvalidRequest",
    "KeyLimitReached",
    "Misconfigured",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "SettingsError",
    "StoreUnavailable",
    "UnsupportedMediaType",
    "UnsupportedParameter",
    "UpstreamFailed",
    "as_gateway_error",
]

log = logging.getLogger("opencode_openai")


class SettingsError(ValueError):
    """A setting, or a combination of them, that the gateway refuses (exit code 2).

    Not a GatewayError: no client is told of it; the command stops, or a reload is refused.
    """


class GatewayError(Exception):
    """Base class: an error a client is told about, with its HTTP status and OpenAI type."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class InvalidRequest(GatewayError):
    """The request is malformed or asks for something this gateway cannot do."""

    status = 400
    type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    """A known OpenAI field whose value the gateway would have to silently ignore."""

    code = "unsupported_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param)


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model `{model}` does not exist or you do not have access to it. "
            "GET /v1/models lists the models this gateway can reach.",
            param="model",
        )


class ClientDisconnected(GatewayError):
    """The client went away before the answer: its turn was aborted; nobody reads this."""

    status = 499
    type = "invalid_request_error"
    code = "client_disconnected"

    def __init__(self) -> None:
        super().__init__("the client disconnected; its turn was aborted")


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class KeyLimitReached(GatewayError):
    """A key's own limit (requests or tokens per minute, concurrent turns) is reached.

    Not a RateLimited: that is the gateway at capacity (Anthropic's 529 overloaded); this is
    the client's quota, a 429 in every protocol.
    """

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))})


class StoreUnavailable(GatewayError):
    """The shared store (Redis) cannot be reached: retry soon."""

    status = 503
    type = "server_error"
    code = "store_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class BackendError(GatewayError):
    """OpenCode or the model provider behind it failed."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"


class BackendUnavailable(BackendError):
    """OpenCode cannot take the request now (starting, restarting, unreachable): retry soon."""

    status = 503
    type = "server_error"
    code = "backend_unavailable"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "1", **(headers or {})})


class BackendTimeout(BackendError):
    status = 504
    type = "timeout"
    code = "timeout"


class UpstreamFailed(BackendError):
    """The provider answered with an error; keep its status where it is a client's concern."""

    def __init__(self, message: str, *, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        if upstream_status == 429:
            self.status, self.type, self.code = 429, "rate_limit_error", "rate_limit_exceeded"
        elif upstream_status in (401, 403):
            # The gateway's client authenticated fine; the provider's key is what failed.
            self.code = "upstream_authentication_failed"
        elif upstream_status == 404:
            self.code = "upstream_model_not_found"


class Misconfigured(BackendUnavailable):
    """What the gateway was told to do cannot work (an alias to a model OpenCode does not
    offer, say): refused at start-up, not retried like a crash."""

    code = "misconfigured"


class InternalError(GatewayError):
    """Anything that is not a GatewayError: a bug. The client learns nothing of its details."""

    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("The gateway failed unexpectedly; the details are in its log.")


def as_gateway_error(exc: BaseException) -> GatewayError:
    """The error a client is told about, logged once here: 4xx as a warning, 5xx as an error
    (with the traceback of anything unexpected). Each protocol renders it in its own shape."""
    if isinstance(exc, GatewayError):
        level = logging.WARNING if exc.status < 500 else logging.ERROR
        log.log(level, "%s %s: %s", exc.status, type(exc).__name__, exc.message)
        return exc
    log.error("unexpected error", exc_info=exc)
    return InternalError()
