"""Per-key limits: sliding windows of requests and tokens, concurrent turns, and the headers each
protocol makes of them. The same tests run on both implementations: in process
(core/ratelimit.py) and in a real Redis (store/redis.py), with the same fake clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from opencode_openai.core.errors import KeyLimitReached, StoreUnavailable
from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.ratelimit import InProcessLimits, Limits, Quota, Quotas
from opencode_openai.protocols.anthropic import anthropic_rate_headers
from opencode_openai.protocols.openai_limits import openai_rate_headers
from opencode_openai.store import RedisLimits
from opencode_openai.store.redis import connect
from tests.support.redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**limits: int) -> ApiKey:
    return ApiKey("k", hash_key("k"), **limits)  # type: ignore[arg-type]


MakeLimits = Callable[[Clock], Limits]


@pytest.fixture(params=["in-process", "redis"])
async def make_limits(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimits]:
    """Limits of one implementation, each made with its clock (in Redis: a prefix of the
    test's own, so tests share no counts)."""
    if request.param == "in-process":
        yield InProcessLimits
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = connect(server.url)
    prefix = f"test-{uuid.uuid4().hex}"
    yield lambda clock: RedisLimits(client, turn_lease_s=300, prefix=prefix, clock=clock)
    await client.aclose()


async def test_requests_per_minute_slide_with_each_admission(make_limits: MakeLimits) -> None:
    clock = Clock()
    limits, limited = make_limits(clock), key(requests_per_minute=3)
    seen = []
    for step in (0, 10, 20):
        clock.now = 1000 + step
        ticket = await limits.admit(limited)
        await limits.finish(limited, ticket, 0)
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


async def test_tokens_are_charged_when_a_turn_ends(make_limits: MakeLimits) -> None:
    clock = Clock()
    limits, limited = make_limits(clock), key(tokens_per_minute=100)
    await limits.finish(limited, await limits.admit(limited), 60)
    clock.now += 5
    ticket = await limits.admit(limited)
    assert (await limits.standing(limited)).tokens == Quota(100, 40, 55.0)
    await limits.finish(limited, ticket, 60)  # admitted under the limit, it may go past it
    with pytest.raises(KeyLimitReached) as refused:
        await limits.admit(limited)
    assert (await limits.standing(limited)).tokens == Quota(100, 0, 60.0)
    # Under the limit again once the first 60 leave (55 s from now), not the whole window.
    assert refused.value.headers["Retry-After"] == "55"
    clock.now += 55
    await limits.admit(limited)


async def test_concurrent_turns_are_capped_and_given_back(make_limits: MakeLimits) -> None:
    limits, limited = make_limits(Clock()), key(max_concurrent_turns=2)
    first = await limits.admit(limited)
    await limits.admit(limited)
    with pytest.raises(KeyLimitReached) as refused:
        await limits.admit(limited)
    assert "2 concurrent turns" in refused.value.message and refused.value.status == 429
    await limits.finish(limited, first, 0)
    await limits.admit(limited)


async def test_no_more_than_the_limit_is_admitted_at_once(make_limits: MakeLimits) -> None:
    limits, limited = make_limits(Clock()), key(requests_per_minute=7)

    async def one() -> bool:
        try:
            await limits.admit(limited)
        except KeyLimitReached:
            return False
        return True

    assert sum(await asyncio.gather(*(one() for _ in range(50)))) == 7


async def test_an_unlimited_key_keeps_no_count(make_limits: MakeLimits) -> None:
    limits = make_limits(Clock())
    unlimited = ApiKey("free", hash_key("free"))
    for _ in range(200):
        await limits.admit(unlimited)
    assert await limits.standing(unlimited) == Quotas()


async def test_replicas_sharing_a_redis_share_each_keys_limits(redis_server: RedisServer) -> None:
    """Two replicas (two clients, one prefix): the limit holds across both, and a turn that
    its replica never finished (it died) frees its slot once its lease has passed."""
    clock, prefix = Clock(), f"test-{uuid.uuid4().hex}"
    clients = [connect(redis_server.url), connect(redis_server.url)]
    one, two = (
        RedisLimits(client, turn_lease_s=90, prefix=prefix, clock=clock) for client in clients
    )
    limited = key(requests_per_minute=10, max_concurrent_turns=2)
    await one.admit(limited)  # never finished: its replica dies
    await two.admit(limited)
    with pytest.raises(KeyLimitReached, match="2 concurrent turns"):
        await one.admit(limited)
    assert (await one.standing(limited)).requests == Quota(10, 8, 60.0)
    clock.now += 91  # the dead replica's turn outlived its lease, as did the other
    await two.admit(limited)
    for client in clients:
        await client.aclose()


async def test_an_unreachable_redis_refuses_a_limited_key_with_503() -> None:
    client = connect("redis://127.0.0.1:9/0")  # nobody listens on the discard port
    limits = RedisLimits(client, turn_lease_s=90, clock=Clock())
    with pytest.raises(StoreUnavailable) as refused:
        await limits.admit(key(requests_per_minute=1))
    assert refused.value.status == 503 and refused.value.code == "store_unavailable"
    assert "127.0.0.1" not in refused.value.message  # the URL (it may hold a password) is not told
    assert await limits.admit(ApiKey("free", hash_key("free")))  # an unlimited key needs no count
    await client.aclose()


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
