"""OpenAI's rate-limit headers, from where a key stands (core/ratelimit.py): on every answer
to a limited key's turn, and on its 429."""

from __future__ import annotations

from opencode_openai.core.ratelimit import Quotas

__all__ = ["openai_rate_headers"]


def _duration(seconds: float) -> str:
    """OpenAI's way of writing a wait: `250ms`, `12s`, `1m30s`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def openai_rate_headers(quotas: Quotas) -> dict[str, str]:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` of the limits the key has."""
    headers: dict[str, str] = {}
    for kind, quota in (("requests", quotas.requests), ("tokens", quotas.tokens)):
        if quota is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(quota.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(quota.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = _duration(quota.reset_s)
    return headers
