"""create_app: the Connexion AsyncApp built from openapi/openapi.yaml, for the CLI and tests."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from connexion import AsyncApp, ConnexionMiddleware
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.middleware.response_validation import ResponseValidationMiddleware
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from opencode_openai import __version__
from opencode_openai.app.access_log import AccessLog
from opencode_openai.app.body_guard import BodyGuard
from opencode_openai.app.body_validator import validator_map
from opencode_openai.app.errors import error_answer
from opencode_openai.app.live_config import LiveConfig, SnapshotConfig
from opencode_openai.app.rate_headers import RateHeaders
from opencode_openai.app.state_lock import hold_state_dir
from opencode_openai.backend import OpenCodeBackend
from opencode_openai.core.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from opencode_openai.core.keys import ANONYMOUS
from opencode_openai.core.metrics import GatewayMetrics
from opencode_openai.core.settings import GatewayConfig
from opencode_openai.core.usage import UsageLog
from opencode_openai.protocols.openai_limits import RATE_HEADERS
from opencode_openai.store import open_stores

__all__ = ["create_app", "load_spec"]

_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}

_AUTH_MESSAGE = (
    "Missing or incorrect API key. Send it as `Authorization: Bearer <key>`; the gateway printed "
    "its key at start-up (or set one with --api-key / OPENAI_PROXY_API_KEY)."
)


@lru_cache(maxsize=1)
def _spec_text() -> str:
    return resources.files("opencode_openai.openapi").joinpath("openapi.yaml").read_text()


def load_spec(*, auth: bool = True) -> dict[str, Any]:
    """The spec as a dict; without auth its security requirements are dropped (--no-auth)."""
    spec: dict[str, Any] = copy.deepcopy(yaml.safe_load(_spec_text()))
    spec["info"]["version"] = __version__
    if not auth:
        spec.pop("security", None)
        for path in spec["paths"].values():
            for operation in path.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)
    return spec


def _render(request: ConnexionRequest, exc: BaseException) -> ConnexionResponse:
    status, body, headers = error_answer(request.url.path, exc)
    return ConnexionResponse(
        status_code=status, body=body, headers=headers, content_type="application/json"
    )


def _as_gateway_error(status: int, detail: str) -> BaseException:
    if status == 401:
        return AuthenticationFailed(_AUTH_MESSAGE)
    cls = _BY_STATUS.get(status)
    if cls is None:
        error = GatewayError(detail)
        error.status = status
        error.type = "invalid_request_error" if status < 500 else "server_error"
        return error
    return cls(detail)


async def _problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ProblemException)
    return _render(request, _as_gateway_error(exc.status, str(exc.detail or exc.title)))


def _allowed_methods(spec: dict[str, Any]) -> Callable[[str], str | None]:
    """The `Allow` header for a path: every method the spec declares for it.

    Connexion routes each operation on its own, so the 405 of a path with two operations
    (GET and DELETE /v1/responses/{response_id}) would name only one of them.
    """
    table = [
        (
            re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
            ", ".join(
                sorted(
                    {m.upper() for m in item if m in _METHODS}
                    | ({"HEAD"} if "get" in item else set())
                )
            ),
        )
        for path, item in spec["paths"].items()
    ]
    return lambda path: next((methods for pattern, methods in table if pattern.match(path)), None)


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _http_exception_handler(
    allowed: Callable[[str], str | None],
) -> Callable[[ConnexionRequest, Exception], Awaitable[ConnexionResponse]]:
    async def handle(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if exc.status_code != 404 else f"Unknown route: {request.url.path}"
        error = _as_gateway_error(exc.status_code, str(detail))
        if isinstance(error, GatewayError) and exc.headers:
            error.headers.update(exc.headers)  # e.g. `Allow` on a 405
        if isinstance(error, GatewayError) and exc.status_code == 405:
            methods = allowed(request.url.path)
            if methods:
                error.headers["Allow"] = methods
        return _render(request, error)

    return handle


async def _any_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    return _render(request, exc)


def create_app(
    config: GatewayConfig,
    *,
    on_ready: Callable[[OpenCodeBackend], Awaitable[None] | None] | None = None,
    on_failed: Callable[[OpenCodeBackend], None] | None = None,
    reread: Callable[[], GatewayConfig] | None = None,
) -> AsyncApp:
    """The gateway for `config`. With `reread` (the CLI's: flags, environment and config file
    read again), SIGHUP reloads the settings that can change while it runs (app/live_config)."""
    live = LiveConfig(config)
    metrics = GatewayMetrics()
    response_store, limits = open_stores(config)
    usage_log = UsageLog(config.usage_log) if config.usage_log else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: ConnexionMiddleware) -> AsyncIterator[dict[str, Any]]:
        with hold_state_dir(config.state_dir):
            backend = OpenCodeBackend(config, on_ready=on_ready, on_failed=on_failed)
            backend.start_in_background()
            loop = asyncio.get_running_loop()
            if reread is not None:

                def apply(new: GatewayConfig) -> None:
                    backend.use_aliases(new.model_aliases)

                loop.add_signal_handler(signal.SIGHUP, live.reload, reread, apply)
            try:
                # Each request's `config` is the live one of its arrival (SnapshotConfig).
                yield {
                    "backend": backend,
                    "limits": limits,
                    "metrics": metrics,
                    "response_store": response_store,
                }
            finally:
                if reread is not None:
                    loop.remove_signal_handler(signal.SIGHUP)
                await backend.stop()
                await response_store.close()
                if usage_log is not None:
                    usage_log.close()

    spec = load_spec(auth=config.auth)
    # Responses are checked against the spec by the contract suite, not on every request, so
    # Connexion's response-validation layer (a pass-through then) is left out of the stack.
    middlewares = [
        m for m in ConnexionMiddleware.default_middlewares if m is not ResponseValidationMiddleware
    ]
    app = AsyncApp(
        __name__, lifespan=lifespan, validator_map=validator_map(), middlewares=middlewares
    )
    app.add_api(spec)
    # Outermost first: each request gets the live config; every answer gets an id, a log line
    # and a limited key's rate-limit headers; CORS (off unless origins are named) wraps the
    # rest; the body guard runs after routing and security.
    app.add_middleware(SnapshotConfig, position=MiddlewarePosition.BEFORE_EXCEPTION, live=live)
    app.add_middleware(
        AccessLog,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        metrics=metrics,
        usage_log=usage_log,
        anonymous=None if config.auth else ANONYMOUS,
    )
    app.add_middleware(RateHeaders, position=MiddlewarePosition.BEFORE_EXCEPTION, limits=limits)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            position=MiddlewarePosition.BEFORE_EXCEPTION,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
            expose_headers=[
                "X-Request-Id",
                "Retry-After",
                "X-OpenCode-Model",
                *RATE_HEADERS,
            ],
        )
    app.add_middleware(
        BodyGuard,
        position=MiddlewarePosition.BEFORE_VALIDATION,
        max_body_bytes=config.max_body_bytes,
        body_paths=frozenset(
            path for path, item in spec["paths"].items() if "requestBody" in item.get("post", {})
        ),
    )
    app.add_error_handler(GatewayError, _any_error)
    app.add_error_handler(ProblemException, _problem)
    app.add_error_handler(HTTPException, _http_exception_handler(_allowed_methods(spec)))
    app.add_error_handler(Exception, _any_error)
    return app
