"""The error answer of any route, in its protocol's shape, from any exception.

Errors reach a client from three places: Connexion's and Starlette's error handlers (routing,
auth, validation, handler failures), the body guard (before Connexion reads the body), and an
event inside a stream (rendered by the protocol's stream). The first two come here, and the
route decides the shape: OpenAI's on every route today.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from opencode_openai.core.errors import GatewayError, as_gateway_error
from opencode_openai.protocols.openai_errors import openai_error

__all__ = ["error_answer"]

Renderer = Callable[[GatewayError], dict[str, Any]]

#: Route prefixes and their protocol's error shape; the first that matches wins.
_RENDERERS: tuple[tuple[str, Renderer], ...] = (("/", openai_error),)


def _renderer(path: str) -> Renderer:
    return next(render for prefix, render in _RENDERERS if path.startswith(prefix))


def error_answer(path: str, exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """(status, JSON body, headers) of the answer to a request for `path` that raised `exc`."""
    error = as_gateway_error(exc)
    return error.status, json.dumps(_renderer(path)(error)).encode(), dict(error.headers)
