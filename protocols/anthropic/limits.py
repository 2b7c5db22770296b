"""Anthropic's rate-limit headers, from where a key stands (core/ratelimit.py): on every
answer to a limited key's turn on /v1/messages, and on its 429."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opencode_openai.core.ratelimit import Quotas

__all__ = ["anthropic_rate_headers"]


def anthropic_rate_headers(quotas: Quotas) -> dict[str, str]:
    """`anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` of the key's limits;
    `reset` is the RFC 3339 time the limit is whole again."""
    now = datetime.now(UTC)
    headers: dict[str, str] = {}
    for kind, quota in (("requests", quotas.requests), ("tokens", quotas.tokens)):
        if quota is not None:
            reset = (now + timedelta(seconds=quota.reset_s)).replace(microsecond=0)
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(quota.limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(quota.remaining)
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset.isoformat().replace("+00:00", "Z")
    return headers
