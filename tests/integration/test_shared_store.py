"""`--store redis://…`: two gateways (replicas) sharing one real redis-server, through a real
`opencode serve`. A Responses chain started on one continues exactly on the other; a key's
limits hold across both; a Redis that goes away is a 503 in each protocol's shape, never a 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from contract.transport import ValidatingTransport
from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.settings import Secret
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
LIMITED = ApiKey("shared", hash_key("sk-oo-shared"), requests_per_minute=3)


@pytest.fixture(scope="module")
def replicas(gateway: GatewayServer, redis_server: RedisServer) -> Iterator[list[GatewayServer]]:
    """Two gateways on the same Redis and prefix, as replicas behind a balancer would be."""
    store = {"store": Secret(redis_server.url), "store_prefix": f"test-{uuid.uuid4().hex}"}
    keys = {"api_keys": (Secret(API_KEY),), "keys": (LIMITED,)}
    servers = [attached_to(gateway, **store, **keys) for _ in range(2)]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def transport() -> Iterator[ValidatingTransport]:
    """Every answer checked against the contract; the clients' connections closed after."""
    checked = ValidatingTransport()
    yield checked
    checked.inner.close()
    checked.assert_clean()


def sdk(server: GatewayServer, transport: ValidatingTransport, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url,
        api_key=key,
        max_retries=0,
        timeout=30,
        http_client=httpx.Client(transport=transport, timeout=30),
    )


def test_a_chain_continues_exactly_on_the_other_replica(
    replicas: list[GatewayServer],
    fake_upstream: fu.FakeUpstream,
    marker: str,
    transport: ValidatingTransport,
) -> None:
    fake_upstream.script(marker, fu.text("first answer"), fu.text("second answer"))
    one, two = (sdk(server, transport) for server in replicas)
    first = one.responses.create(
        model=MODEL, instructions="old rules", input=[{"role": "user", "content": marker}]
    )
    second = two.responses.create(
        model=MODEL, previous_response_id=first.id, input="and then?", instructions="new rules"
    )
    assert second.output_text == "second answer" and second.previous_response_id == first.id
    _, continued = fake_upstream.chat_requests(marker)
    assert continued.body["messages"] == [
        {"role": "system", "content": "new rules"},
        {"role": "user", "content": marker},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "and then?"},
    ]
    assert one.responses.retrieve(second.id).output_text == "second answer"
    two.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        one.responses.retrieve(first.id)


def test_a_keys_limit_holds_across_replicas(
    replicas: list[GatewayServer],
    fake_upstream: fu.FakeUpstream,
    marker: str,
    transport: ValidatingTransport,
) -> None:
    fake_upstream.script(marker, *(fu.text("ok") for _ in range(3)))
    one, two = (sdk(server, transport, "sk-oo-shared") for server in replicas)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": marker}]}
    seen = [
        client.chat.completions.with_raw_response.create(**chat)  # type: ignore[arg-type]
        for client in (one, two, one)
    ]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in seen] == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        two.chat.completions.create(**chat)  # type: ignore[arg-type]
    assert refused.value.code == "rate_limit_exceeded"
    assert "3 requests per minute" in refused.value.message
    assert len(fake_upstream.chat_requests(marker)) == 3  # the fourth never reached the model


def test_without_redis_a_stored_response_or_a_limited_key_is_a_503(
    gateway: GatewayServer,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    transport: ValidatingTransport,
) -> None:
    """A Redis nobody listens on: reading a stored response, and admitting a limited key, fail
    with 503 store_unavailable in the route's own shape; an unlimited chat is unaffected."""
    fake_upstream.script(marker, fu.text("still fine"))
    server = attached_to(
        gateway,
        store=Secret("redis://127.0.0.1:9/0"),
        api_keys=(Secret(API_KEY),),
        keys=(LIMITED,),
    )
    try:
        client = sdk(server, transport)
        with pytest.raises(openai.InternalServerError) as no_store:
            client.responses.retrieve("resp_anything")
        assert no_store.value.status_code == 503 and no_store.value.code == "store_unavailable"
        with pytest.raises(openai.InternalServerError) as no_limits:
            sdk(server, transport, "sk-oo-shared").chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "x"}]
            )
        assert no_limits.value.code == "store_unavailable"
        assert no_limits.value.response.headers["retry-after"] == "1"
        with (
            anthropic.Anthropic(
                base_url=server.url, api_key="sk-oo-shared", max_retries=0, timeout=30
            ) as claude,
            pytest.raises(anthropic.APIStatusError) as messages,
        ):
            claude.messages.create(
                model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        assert messages.value.status_code == 503
        assert messages.value.body["type"] == "error"  # type: ignore[index]
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": marker}]
        )
        assert reply.choices[0].message.content == "still fine"
    finally:
        server.stop()
