"""core/ratelimit.py: sliding windows of requests and tokens, concurrent turns, and the
headers each protocol makes of them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from opencode_openai.core.errors import KeyLimitReached
from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.ratelimit import InProcessLimits, Quota, Quotas
from opencode_openai.protocols.anthropic import anthropic_rate_headers
from opencode_openai.protocols.openai_limits import openai_rate_headers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**limits: int) -> ApiKey:
    return ApiKey("k", hash_key("k"), **limits)  # type: ignore[arg-type]


async def test_requests_per_minute_slide_with_each_admission() -> None:
    clock = Clock()
    limits, limited = InProcessLimits(clock), key(requests_per_minute=3)
    seen = []
    for step in (0, 10, 20):
        clock.now = 1000 + step
        await limits.admit(limited)
        await limits.finish(limited, 0)
        seen.append((await limits.standing(limited)).requests)
    assert seen[0] == Quota(3, 2, 60.0) and seen[2] == Quota(3, 0, 60.0)
    clock.now = 1059.0  # the first admission (at 1000) is still inside the window
    with pytest.raises(KeyLimitReached) as refused:
        await limits.admit(limited)
    assert refused.value.headers["Retry-After"] == "1"
    assert (await limits.standing(limited)).requests == Quota(3, 0, 21.0)
    clock.now = 1060.0  # it left: one more fits, not two
    await limits.admit(limited)
    with pytest.raises(KeyLimitReached) as again:
        await limits.admit(limited)
    assert again.value.headers["Retry-After"] == "10"


async def test_tokens_are_charged_when_a_turn_ends() -> None:
    clock = Clock()
    limits, limited = InProcessLimits(clock), key(tokens_per_minute=100)
    await limits.admit(limited)
    await limits.finish(limited, 60)
    clock.now += 5
    await limits.admit(limited)
    assert (await limits.standing(limited)).tokens == Quota(100, 40, 55.0)
    await limits.finish(limited, 60)  # admitted under the limit, it may go past it
    with pytest.raises(KeyLimitReached) as refused:
        await limits.admit(limited)
    assert (await limits.standing(limited)).tokens == Quota(100, 0, 60.0)
    # Under the limit again once the first 60 leave (55 s from now), not the whole window.
    assert refused.value.headers["Retry-After"] == "55"
    clock.now += 55
    await limits.admit(limited)


async def test_concurrent_turns_are_capped_and_given_back() -> None:
    limits, limited = InProcessLimits(Clock()), key(max_concurrent_turns=2)
    await limits.admit(limited)
    await limits.admit(limited)
    with pytest.raises(KeyLimitReached) as refused:
        await limits.admit(limited)
    assert "2 concurrent turns" in refused.value.message and refused.value.status == 429
    await limits.finish(limited, 0)
    await limits.admit(limited)


async def test_no_more_than_the_limit_is_admitted_at_once() -> None:
    limits, limited = InProcessLimits(Clock()), key(requests_per_minute=7)

    async def one() -> bool:
        try:
            await limits.admit(limited)
        except KeyLimitReached:
            return False
        return True

    assert sum(await asyncio.gather(*(one() for _ in range(50)))) == 7


async def test_an_unlimited_key_keeps_no_count() -> None:
    limits = InProcessLimits(Clock())
    unlimited = ApiKey("free", hash_key("free"))
    for _ in range(1000):
        await limits.admit(unlimited)
    assert await limits.standing(unlimited) == Quotas()


def test_openai_headers_name_each_limit_the_key_has() -> None:
    quotas = Quotas(Quota(60, 59, 0.25), Quota(1000, 0, 90.4))
    assert openai_rate_headers(quotas) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "250ms",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m30s",
    }
    assert openai_rate_headers(Quotas(tokens=Quota(5, 5, 12))) == {
        "x-ratelimit-limit-tokens": "5",
        "x-ratelimit-remaining-tokens": "5",
        "x-ratelimit-reset-tokens": "12s",
    }


def test_anthropic_headers_reset_at_a_time() -> None:
    headers = anthropic_rate_headers(Quotas(Quota(60, 10, 30.0)))
    assert set(headers) == {
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    }
    assert headers["anthropic-ratelimit-requests-remaining"] == "10"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
    assert 29 <= (reset - datetime.now(UTC)).total_seconds() <= 31
