"""Which protocol a route speaks, for what the app itself writes on its answers: the error
shape and status (app/errors.py) and the rate-limit headers (app/rate_headers.py).
Anthropic's on the Messages API's routes, OpenAI's on every other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opencode_openai.core.errors import GatewayError
from opencode_openai.core.ratelimit import Quotas
from opencode_openai.protocols.anthropic import (
    anthropic_error,
    anthropic_rate_headers,
    anthropic_status,
)
from opencode_openai.protocols.openai_errors import openai_error
from opencode_openai.protocols.openai_limits import openai_rate_headers

__all__ = ["RouteProtocol", "protocol_of"]


def _own_status(error: GatewayError) -> int:
    return error.status


@dataclass(frozen=True)
class RouteProtocol:
    error: Callable[[GatewayError], dict[str, Any]]
    status: Callable[[GatewayError], int]
    rate_headers: Callable[[Quotas], dict[str, str]]


#: Route prefixes and their protocol; the first that matches wins.
_PROTOCOLS: tuple[tuple[str, RouteProtocol], ...] = (
    ("/v1/messages", RouteProtocol(anthropic_error, anthropic_status, anthropic_rate_headers)),
    ("/", RouteProtocol(openai_error, _own_status, openai_rate_headers)),
)


def protocol_of(path: str) -> RouteProtocol:
    return next(protocol for prefix, protocol in _PROTOCOLS if path.startswith(prefix))
