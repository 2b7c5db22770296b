"""AccessLog: a request id, one structured log line and the request metrics, for every request,
and a usage line for every API request (under /v1/) when the usage log is on.

The id comes from the client's `x-request-id` when it is a sane token, else it is made here; it
is echoed in the response's `x-request-id`. The lines hold no body, no header values, no key.
The request's usage (core/usage.py) starts here, empty (with --no-auth, the anonymous key's),
and is filled by the key check and the turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencode_openai.core.keys import ApiKey
from opencode_openai.core.metrics import GatewayMetrics, route_of
from opencode_openai.core.usage import RequestUsage, UsageLog, usage_line

__all__ = ["AccessLog", "request_id_of"]

log = logging.getLogger("opencode_openai.access")

_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_ANTHROPIC_PREFIX = "/v1/messages"


def request_id_of(scope: Scope) -> str:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SANE_ID.match(value):
            return value.decode()
    return "req_" + secrets.token_hex(12)


class AccessLog:
    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics,
        usage_log: UsageLog | None = None,
        anonymous: ApiKey | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.usage_log = usage_log
        #: The key of every request when the gateway takes none (--no-auth).
        self.anonymous = anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        # The request's deadline counts from here (core/deadline.py), its arrival.
        state["arrived"] = asyncio.get_running_loop().time()
        usage = state["usage"] = RequestUsage(key=self.anonymous)
        arrived_at = time.time()
        started = time.perf_counter()
        status = 0
        id_headers = [(b"x-request-id", request_id.encode())]
        if scope["path"].startswith(_ANTHROPIC_PREFIX):
            id_headers.append((b"request-id", request_id.encode()))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *id_headers]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            status = status or 499  # 499: the client went away before any answer
            self.metrics.request_done(scope["path"], status, seconds, usage)
            if self.usage_log is not None and scope["path"].startswith("/v1/"):
                self.usage_log.write(
                    usage_line(
                        usage,
                        at=arrived_at,
                        request_id=request_id,
                        route=route_of(scope["path"]),
                        status=status,
                        duration_s=seconds,
                    )
                )
            client = scope.get("client")
            if log.isEnabledFor(logging.INFO):
                log.info(
                    json.dumps(
                        {
                            "request_id": request_id,
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round(seconds * 1000, 1),
                            "client": client[0] if client else None,
                        }
                    )
                )
