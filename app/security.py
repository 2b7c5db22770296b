"""The key check, bound by the spec's `x-bearerInfoFunc` (`Authorization: Bearer`) and
`x-apikeyInfoFunc` (`x-api-key`, Anthropic's header): the same keys, the same comparison."""

from __future__ import annotations

import hmac
from typing import Any

from opencode_openai.core.settings import GatewayConfig

__all__ = ["api_key_info", "bearer_info", "key_matches"]


def key_matches(token: str, keys: tuple[Any, ...]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    given = token.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.reveal().encode())
    return matched


def bearer_info(token: str, request: Any) -> dict[str, Any] | None:
    config: GatewayConfig = request.scope["state"]["config"]
    if key_matches(token, config.api_keys):
        return {"sub": "client"}
    return None


def api_key_info(api_key: str, request: Any) -> dict[str, Any] | None:
    return bearer_info(api_key, request)
