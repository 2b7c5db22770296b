"""RateHeaders: a limited key's rate-limit headers on every answer it gets, in the route's
protocol's names (OpenAI's `x-ratelimit-*`, Anthropic's `anthropic-ratelimit-*`).

They say where the key stands when the answer starts: after this request's admission, and,
for a JSON answer, after its tokens were charged. The key is the one the key check put in the
request's usage; an answer to no key, or to an unlimited one, gets none, nor one given while the
shared store cannot say where the key stands.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencode_openai.app.route_protocol import protocol_of
from opencode_openai.core.errors import StoreUnavailable
from opencode_openai.core.ratelimit import Limits
from opencode_openai.core.usage import RequestUsage

__all__ = ["RateHeaders"]


class RateHeaders:
    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            usage: RequestUsage = scope["state"]["usage"]
            if message["type"] == "http.response.start" and usage.key and usage.key.limited:
                try:
                    quotas = await self.limits.standing(usage.key)
                except StoreUnavailable:
                    quotas = None  # the answer (often that very 503) goes without them
                if quotas is not None:
                    headers = protocol_of(scope["path"]).rate_headers(quotas)
                    message["headers"] = [
                        *message.get("headers", []),
                        *((name.encode(), value.encode()) for name, value in headers.items()),
                    ]
            await send(message)

        await self.app(scope, receive, send_with_limits)
