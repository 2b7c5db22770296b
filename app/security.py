"""The key check, bound by the spec's `x-bearerInfoFunc` (`Authorization: Bearer`) and
`x-apikeyInfoFunc` (`x-api-key`, Anthropic's header): the same keys, the same comparison.

The key found travels in Connexion's token info (`current_key` in handlers/_turn.py reads it),
and in the request's usage (metrics and the usage log count by its name; its rate-limit
headers are its own, app/rate_headers.py).
An expired key is refused as a wrong one is (401); only the log says which key it was.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from opencode_openai.core.keys import find_key
from opencode_openai.core.settings import GatewayConfig
from opencode_openai.core.usage import RequestUsage

__all__ = ["api_key_info", "bearer_info"]

log = logging.getLogger("opencode_openai.auth")


def bearer_info(token: str, request: Any) -> dict[str, Any] | None:
    config: GatewayConfig = request.scope["state"]["config"]
    key = find_key(token, config.accepted_keys)
    if key is None:
        return None
    if key.expired(datetime.now(UTC)):
        log.warning("refused key %r: it expired at %s", key.name, key.expires)
        return None
    usage: RequestUsage = request.scope["state"]["usage"]
    usage.key = key
    return {"sub": key.name, "key": key}


def api_key_info(api_key: str, request: Any) -> dict[str, Any] | None:
    return bearer_info(api_key, request)
