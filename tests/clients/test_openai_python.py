"""The official `openai` Python SDK, unmodified, against the gateway.

Each test checks what the SDK returned (content the fake upstream scripted, so it can fail) and,
through the recording proxy, what the SDK sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from tests.clients._support import MODEL, RecordingProxy, occupied
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode


@pytest.fixture
def sdk(proxy: RecordingProxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=proxy.base_url, api_key=API_KEY, max_retries=0, timeout=30
    ) as client:
        yield client


def test_non_stream(
    sdk: openai.OpenAI, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("Bonjour from the fake", usage=fu.Usage(12, 5)))
    reply = sdk.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"hello {marker}"},
        ],
        temperature=0.2,
    )
    assert reply.choices[0].message.content == "Bonjour from the fake"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == MODEL
    assert reply.usage is not None and (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    ) == (12, 5)
    [sent] = proxy.chat_requests(marker)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["user-agent"].startswith("OpenAI/Python")
    assert "x-stainless-lang" in sent.headers
    [upstream] = fake_upstream.chat_requests(marker)
    assert upstream.body["temperature"] == 0.2
    assert upstream.body["messages"][-1] == {"role": "user", "content": f"hello {marker}"}


def test_stream_with_include_usage(
    sdk: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["Stream", "ing ", "works"], usage=fu.Usage(8, 3)))
    chunks = list(
        sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": marker}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming works"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (8, 3)


def test_stream_helper_without_usage(
    sdk: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """`chat.completions.stream()`, the SDK's event helper, assembles the final completion."""
    fake_upstream.script(marker, fu.text(["a", "b", "c"]))
    with sdk.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": marker}]
    ) as stream:
        # The first chunk carries the role and an empty content, as OpenAI's does.
        deltas = [event.delta for event in stream if event.type == "content.delta" and event.delta]
        final = stream.get_final_completion()
    assert deltas == ["a", "b", "c"]
    assert final.choices[0].message.content == "abc"
    assert final.usage is None


class City(BaseModel):
    name: str
    population: int


def test_response_format_parse_with_pydantic(
    sdk: openai.OpenAI, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    answer = {"name": "Lyon", "population": 522000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer))))
    reply = sdk.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": marker}], response_format=City
    )
    assert reply.choices[0].message.parsed == City(**answer)
    [sent] = proxy.chat_requests(marker)
    assert sent.body["response_format"]["type"] == "json_schema"
    assert sent.body["response_format"]["json_schema"]["strict"] is True
    [upstream] = fake_upstream.chat_requests(marker)
    assert [t["function"]["name"] for t in upstream.body["tools"]] == ["StructuredOutput"]


def test_response_format_json_object_stream(
    sdk: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps({"ok": [1, 2]})))
    )
    chunks = sdk.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"{marker} answer in JSON"}],
        response_format={"type": "json_object"},
        stream=True,
    )
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks if c.choices)) == {
        "ok": [1, 2]
    }


def test_models_list_and_retrieve(sdk: openai.OpenAI, proxy: RecordingProxy) -> None:
    ids = [model.id for model in sdk.models.list()]
    assert "fake/fake-model" in ids and "opencode/default" in ids
    model = sdk.models.retrieve("fake/fake-model")
    assert (model.id, model.object, model.owned_by) == ("fake/fake-model", "model", "fake")
    # The SDK escapes the `/` of the id; the gateway takes both spellings.
    assert proxy.requests(path="/v1/models/fake%2Ffake-model")


def test_wrong_key_is_authentication_error(proxy: RecordingProxy, marker: str) -> None:
    bad = openai.OpenAI(base_url=proxy.base_url, api_key="sk-wrong", max_retries=0, timeout=30)
    with bad, pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}])
    assert info.value.status_code == 401
    assert "sk-wrong" not in str(info.value)


def test_unknown_model_is_not_found_error(sdk: openai.OpenAI, marker: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(
            model="fake/no-such-model", messages=[{"role": "user", "content": marker}]
        )
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("fake/no-such-model")


def test_n_above_one_is_bad_request_error(
    sdk: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": marker}], n=2
        )
    assert info.value.param == "n"
    assert fake_upstream.chat_requests(marker) == []


def test_busy_gateway_is_rate_limit_error(
    busy_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    sdk = openai.OpenAI(base_url=busy_gateway.base_url, api_key=API_KEY, max_retries=0, timeout=30)
    with (
        sdk,
        occupied(busy_gateway, fake_upstream, marker),
        pytest.raises(openai.RateLimitError) as info,
    ):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}])
    assert info.value.response.headers["retry-after"] == "1"
    # Only the request that held the slot reached the upstream; the refused one never started.
    assert len(fake_upstream.chat_requests(marker)) == 1
