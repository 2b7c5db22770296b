"""A key's limits through a real `opencode serve`: requests and tokens per minute, concurrent
turns, with their headers in each protocol's names; 50 requests at once admit no more than the
limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.settings import Secret
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, CORS_ORIGIN, GatewayServer, attached_to

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
RPM, TPM, CAP = 5, 100, 3
KEYS = {
    "burst": ApiKey("burst", hash_key("sk-oo-burst"), requests_per_minute=RPM),
    "tokens": ApiKey("tokens", hash_key("sk-oo-tokens"), tokens_per_minute=TPM),
    "few": ApiKey("few", hash_key("sk-oo-few"), max_concurrent_turns=CAP),
    "claude": ApiKey("claude", hash_key("sk-oo-claude"), requests_per_minute=2),
    "page": ApiKey("page", hash_key("sk-oo-page"), requests_per_minute=10),
}


@pytest.fixture(scope="module")
def limited(gateway: GatewayServer) -> Iterator[GatewayServer]:
    server = attached_to(
        gateway,
        api_keys=(Secret(API_KEY),),
        keys=tuple(KEYS.values()),
        cors_origins=(CORS_ORIGIN,),
    )
    yield server
    server.stop()


def body(marker: str) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": marker}]}


async def at_once(server: GatewayServer, key: str, marker: str, n: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=60, limits=limits
    ) as c:
        return await asyncio.gather(
            *(c.post("/v1/chat/completions", json=body(marker)) for _ in range(n))
        )


def test_fifty_at_once_admit_no_more_than_the_requests_per_minute(
    limited: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("admitted"))
    answers = asyncio.run(at_once(limited, "sk-oo-burst", marker, 50))
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == RPM and statuses.count(429) == 50 - RPM, statuses
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == str(RPM)
        assert "x-ratelimit-limit-tokens" not in answer.headers  # no token limit on this key
    # Where the key stands when each answer starts: never more left than the limit allows.
    assert all(0 <= int(a.headers["x-ratelimit-remaining-requests"]) < RPM for a in answers)
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # A stream refused so gets the 429 as its status, before any event.
    streamed = httpx.post(
        f"{limited.base_url}/chat/completions",
        json={**body(marker), "stream": True},
        headers={"Authorization": "Bearer sk-oo-burst"},
        timeout=30,
    )
    assert streamed.status_code == 429
    assert streamed.headers["content-type"].startswith("application/json")
    assert streamed.headers["x-ratelimit-remaining-requests"] == "0"


def test_fifty_at_once_run_no_more_than_the_concurrent_cap(
    limited: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """Each turn takes 4 s, so all 50 arrive while the first CAP run."""
    fake_upstream.script(marker, fu.text("slow", delay_s=4))
    answers = asyncio.run(at_once(limited, "sk-oo-few", marker, 50))
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == CAP and statuses.count(429) == 50 - CAP, statuses
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 429)
    # The slots came back: the next turn is admitted.
    fake_upstream.script(f"{marker} after", fu.text("again"))
    with openai.OpenAI(base_url=limited.base_url, api_key="sk-oo-few", max_retries=0) as client:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"{marker} after"}]
        )
    assert reply.choices[0].message.content == "again"


def test_tokens_per_minute_count_finished_turns(
    limited: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("sixty", usage=fu.Usage(50, 10)))
    with openai.OpenAI(base_url=limited.base_url, api_key="sk-oo-tokens", max_retries=0) as client:
        first = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": marker}]
        )
        # A JSON answer starts once its turn is charged.
        assert first.headers["x-ratelimit-remaining-tokens"] == str(TPM - 60)
        # Streamed, the second turn is admitted at 60 (under 100), and takes the key past it;
        # its answer starts before it is charged.
        with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": marker}], stream=True
        ) as second:
            assert second.headers["x-ratelimit-remaining-tokens"] == str(TPM - 60)
            assert "x-ratelimit-limit-requests" not in second.headers
            list(second.iter_lines())
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": marker}]
            )
    headers = refused.value.response.headers
    assert headers["x-ratelimit-limit-tokens"] == str(TPM)
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"].endswith("s")
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_anthropic_routes_name_the_limits_as_anthropic_does(
    limited: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("hi"))
    with anthropic.Anthropic(base_url=limited.url, api_key="sk-oo-claude", max_retries=0) as client:
        for remaining in ("1", "0"):
            ok = client.messages.with_raw_response.create(
                model=MODEL, max_tokens=16, messages=[{"role": "user", "content": marker}]
            )
            assert ok.headers["anthropic-ratelimit-requests-limit"] == "2"
            assert ok.headers["anthropic-ratelimit-requests-remaining"] == remaining
            assert ok.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
            assert "x-ratelimit-limit-requests" not in ok.headers
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.messages.create(
                model=MODEL, max_tokens=16, messages=[{"role": "user", "content": marker}]
            )
    # A key's limit is Anthropic's 429 rate_limit_error, not the gateway's 529 overloaded.
    assert refused.value.status_code == 429
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert refused.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_an_unlimited_key_gets_no_limit_headers(
    limited: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("free"))
    answer = httpx.post(
        f"{limited.base_url}/chat/completions",
        json=body(marker),
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert not [name for name in answer.headers if "ratelimit" in name]


def test_a_browser_page_may_read_the_limit_headers(
    limited: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("seen"))
    answer = httpx.post(
        f"{limited.base_url}/chat/completions",
        json=body(marker),
        headers={"Authorization": "Bearer sk-oo-page", "Origin": CORS_ORIGIN},
        timeout=30,
    )
    assert answer.headers["x-ratelimit-remaining-requests"] == "9"
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-ratelimit-remaining-requests", "x-ratelimit-reset-tokens", "retry-after"} <= exposed


def test_every_answer_to_a_limited_key_says_where_it_stands(limited: GatewayServer) -> None:
    """Not only its turns: /v1/models, a refusal, and Anthropic's count_tokens in its names."""
    page = {"Authorization": "Bearer sk-oo-page"}
    models = httpx.get(f"{limited.base_url}/models", headers=page, timeout=30)
    assert models.headers["x-ratelimit-limit-requests"] == "10"
    missing = httpx.get(f"{limited.base_url}/models/fake/no-such", headers=page, timeout=30)
    assert missing.status_code == 404 and missing.headers["x-ratelimit-limit-requests"] == "10"
    counted = httpx.post(
        f"{limited.url}/v1/messages/count_tokens",
        headers={"x-api-key": "sk-oo-page", "anthropic-version": "2023-06-01"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert counted.status_code == 200
    assert counted.headers["anthropic-ratelimit-requests-limit"] == "10"
    assert "x-ratelimit-limit-requests" not in counted.headers
    health = httpx.get(f"{limited.url}/health", headers=page, timeout=30)  # a route with no key
    assert "x-ratelimit-limit-requests" not in health.headers
