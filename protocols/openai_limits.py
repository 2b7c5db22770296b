"""OpenAI's rate-limit headers, from where a key stands (core/ratelimit.py): on every answer
to a limited key's turn, and on its 429."""

from __future__ import annotations

from opencode_openai.core.ratelimit import Quotas

__all__ = ["RATE_HEADERS", "openai_rate_headers"]

_KINDS = ("requests", "tokens")
_PARTS = ("limit", "remaining", "reset")
#: Every header `openai_rate_headers` may send (a browser page may read them: CORS).
RATE_HEADERS = tuple(f"x-ratelimit-{part}-{kind}" for kind in _KINDS for part in _PARTS)


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
    for kind, quota in zip(_KINDS, (quotas.requests, quotas.tokens), strict=True):
        if quota is not None:
            values = (str(quota.limit), str(quota.remaining), _duration(quota.reset_s))
            headers.update(
                (f"x-ratelimit-{part}-{kind}", value)
                for part, value in zip(_PARTS, values, strict=True)
            )
    return headers
