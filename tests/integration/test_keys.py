"""Named keys through a real `opencode serve`: model lists on every route, expiry, and stored
responses that belong to the key that made them.

A key may use a model when its rules match the name the client sends (an id or an alias): a
name outside them is answered exactly as a model that does not exist, and is not listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx
import openai
import pytest

from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.settings import Secret
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to

pytestmark = pytest.mark.opencode

NARROW = "sk-oo-narrow-test-key"  # fake/fake-model only
ALIASED = "sk-oo-aliased-test-key"  # the alias `fast` only
EXPIRED = "sk-oo-expired-test-key"
MODEL = "fake/fake-model"
OTHER = "fake/fake-vision-model"
ALIASES = (("fast", MODEL), ("sneaky", OTHER))


@pytest.fixture(scope="module")
def keyed(gateway: GatewayServer) -> Iterator[GatewayServer]:
    server = attached_to(
        gateway,
        api_keys=(Secret(API_KEY),),
        model_aliases=ALIASES,
        keys=(
            ApiKey("narrow", hash_key(NARROW), models=(MODEL,)),
            ApiKey("aliased", hash_key(ALIASED), models=("fast",)),
            ApiKey("expired", hash_key(EXPIRED), expires=datetime.now(UTC) - timedelta(days=1)),
        ),
    )
    yield server
    server.stop()


def http(server: GatewayServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def sdk(keyed: GatewayServer) -> Iterator[Callable[[str], openai.OpenAI]]:
    """The openai SDK on the keyed gateway, with a key; closed after the test."""
    made: list[openai.OpenAI] = []

    def with_key(key: str) -> openai.OpenAI:
        made.append(openai.OpenAI(base_url=keyed.base_url, api_key=key, max_retries=0))
        return made[-1]

    yield with_key
    for client in made:
        client.close()


def chat(server: GatewayServer, key: str, model: str, text: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    with http(server, key) as client:
        return client.post("/v1/chat/completions", json=body)


def without_model(error: dict[str, Any], model: str) -> dict[str, Any]:
    return {**error, "message": error["message"].replace(model, "MODEL")}


def test_models_lists_only_what_the_key_may_use(keyed: GatewayServer) -> None:
    def listed(key: str) -> list[str]:
        with http(keyed, key) as client:
            return [m["id"] for m in client.get("/v1/models").json()["data"]]

    everything = listed(API_KEY)
    assert {MODEL, OTHER, "fast", "sneaky", "opencode/default"} <= set(everything)
    assert listed(NARROW) == [MODEL]
    assert listed(ALIASED) == ["fast"]
    with http(keyed, NARROW) as client:
        anthropic_page = client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
        assert [m["id"] for m in anthropic_page.json()["data"]] == [MODEL]
        assert client.get(f"/v1/models/{MODEL}").status_code == 200
        hidden = client.get(f"/v1/models/{OTHER}")
        unknown = client.get("/v1/models/fake/no-such-model")
    assert hidden.status_code == unknown.status_code == 404
    assert without_model(hidden.json()["error"], OTHER) == without_model(
        unknown.json()["error"], "fake/no-such-model"
    )


@pytest.mark.parametrize("model", [OTHER, "sneaky", "opencode/default"])
def test_a_model_outside_the_list_is_not_found_on_chat(
    keyed: GatewayServer,
    sdk: Callable[[str], openai.OpenAI],
    fake_upstream: fu.FakeUpstream,
    marker: str,
    model: str,
) -> None:
    """Not through its id, not through an alias of it, not through OpenCode's default."""
    client = sdk(NARROW)
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": marker}])
    unknown = chat(keyed, NARROW, "fake/no-such-model", marker)
    assert refused.value.status_code == unknown.status_code == 404
    body: Any = refused.value.body
    assert body["code"] == "model_not_found"
    assert without_model(body, model) == without_model(
        unknown.json()["error"], "fake/no-such-model"
    )
    fake_upstream.script(marker, fu.text("allowed"))
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": marker}]
    )
    assert reply.choices[0].message.content == "allowed"


def test_an_alias_key_uses_the_alias_not_the_model_behind_it(
    keyed: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("via the alias"))
    reply = chat(keyed, ALIASED, "fast", marker)
    assert reply.status_code == 200 and reply.headers["x-opencode-model"] == MODEL
    assert chat(keyed, ALIASED, MODEL, marker).json()["error"]["code"] == "model_not_found"


def test_a_model_outside_the_list_is_not_found_on_messages_and_responses(
    keyed: GatewayServer, sdk: Callable[[str], openai.OpenAI], marker: str
) -> None:
    with anthropic.Anthropic(base_url=keyed.url, api_key=NARROW, max_retries=0) as messages:
        with pytest.raises(anthropic.NotFoundError) as refused:
            messages.messages.create(
                model="sneaky", max_tokens=16, messages=[{"role": "user", "content": marker}]
            )
        assert refused.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.NotFoundError):
            messages.messages.count_tokens(
                model=OTHER, messages=[{"role": "user", "content": marker}]
            )
    responses = sdk(NARROW)
    with pytest.raises(openai.NotFoundError) as refused_too:
        responses.responses.create(model="sneaky", input=marker)
    assert refused_too.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_stored_responses_are_their_keys_own(
    sdk: Callable[[str], openai.OpenAI], fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """Another key gets 404 for a stored response, and cannot continue from it; a key limited to
    one model cannot reach another through previous_response_id either."""
    fake_upstream.script(marker, fu.text("stored answer"))
    owner, narrow = sdk(API_KEY), sdk(NARROW)
    theirs = owner.responses.create(model=OTHER, input=f"{marker} first")
    with pytest.raises(openai.NotFoundError):
        narrow.responses.retrieve(theirs.id)
    with pytest.raises(openai.NotFoundError):
        narrow.responses.input_items.list(theirs.id)
    with pytest.raises(openai.NotFoundError) as refused:
        narrow.responses.create(model=MODEL, input=f"{marker} next", previous_response_id=theirs.id)
    assert refused.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        narrow.responses.delete(theirs.id)
    assert owner.responses.retrieve(theirs.id).id == theirs.id  # the other key's delete did not

    mine = narrow.responses.create(model=MODEL, input=f"{marker} mine")
    with pytest.raises(openai.NotFoundError) as elsewhere:
        narrow.responses.create(
            model="sneaky", input=f"{marker} more", previous_response_id=mine.id
        )
    assert elsewhere.value.body["code"] == "model_not_found"  # type: ignore[index]
    again = narrow.responses.create(
        model=MODEL, input=f"{marker} more", previous_response_id=mine.id
    )
    assert again.output_text == "stored answer"
    with pytest.raises(openai.NotFoundError):
        owner.responses.retrieve(mine.id)


def test_an_expired_key_is_refused_with_401(keyed: GatewayServer, marker: str) -> None:
    with http(keyed, EXPIRED) as client:
        assert client.get("/v1/models").status_code == 401
    refused = chat(keyed, EXPIRED, MODEL, marker)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    with httpx.Client(base_url=keyed.url, timeout=30) as client:
        anthropic_refused = client.post(
            "/v1/messages",
            headers={"x-api-key": EXPIRED, "anthropic-version": "2023-06-01"},
            json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        )
    assert anthropic_refused.status_code == 401
    assert anthropic_refused.json()["error"]["type"] == "authentication_error"
