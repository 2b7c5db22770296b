"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every route of
OpenAI's API (chat, models, and the gateway's own routes)."""

from __future__ import annotations

from typing import Any

from opencode_openai.core.errors import GatewayError

__all__ = ["openai_error"]


def openai_error(error: GatewayError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }
