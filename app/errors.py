"""The error answer of any route, in its protocol's shape, from any exception.

Errors reach a client from three places: Connexion's and Starlette's error handlers (routing,
auth, validation, handler failures), the body guard (before Connexion reads the body), and an
event inside a stream (rendered by the protocol's stream). The first two come here, and the
route decides the shape (and, for Anthropic's, the status of a gateway at capacity: 529):
Anthropic's on the Messages API's routes, OpenAI's on every other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from opencode_openai.core.errors import GatewayError, as_gateway_error
from opencode_openai.protocols.anthropic import anthropic_error, anthropic_status
from opencode_openai.protocols.openai_errors import openai_error

__all__ = ["error_answer"]

Renderer = Callable[[GatewayError], dict[str, Any]]
StatusOf = Callable[[GatewayError], int]


def _own_status(error: GatewayError) -> int:
    return error.status


#: Route prefixes, their protocol's error shape and status; the first that matches wins.
_RENDERERS: tuple[tuple[str, Renderer, StatusOf], ...] = (
    ("/v1/messages", anthropic_error, anthropic_status),
    ("/", openai_error, _own_status),
)


def _renderer(path: str) -> tuple[Renderer, StatusOf]:
    return next((render, to) for prefix, render, to in _RENDERERS if path.startswith(prefix))


def error_answer(path: str, exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """(status, JSON body, headers) of the answer to a request for `path` that raised `exc`."""
    error = as_gateway_error(exc)
    render, status = _renderer(path)
    return status(error), json.dumps(render(error)).encode(), dict(error.headers)
