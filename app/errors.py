"""The error answer of any route, in its protocol's shape, from any exception.

Errors reach a client from three places: Connexion's and Starlette's error handlers (routing,
auth, validation, handler failures), the body guard (before Connexion reads the body), and an
event inside a stream (rendered by the protocol's stream). The first two come here, and the
route decides the shape (app/route_protocol.py; and, for Anthropic's, the status of a gateway
at capacity: 529): Anthropic's on the Messages API's routes, OpenAI's on every other.
"""

from __future__ import annotations

import json

from opencode_openai.app.route_protocol import protocol_of
from opencode_openai.core.errors import as_gateway_error

__all__ = ["error_answer"]


def error_answer(path: str, exc: BaseException) -> tuple[int, bytes, dict[str, str]]:
    """(status, JSON body, headers) of the answer to a request for `path` that raised `exc`."""
    error = as_gateway_error(exc)
    protocol = protocol_of(path)
    return protocol.status(error), json.dumps(protocol.error(error)).encode(), dict(error.headers)
