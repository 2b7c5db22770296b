"""The Messages API end to end: anthropic SDK -> gateway -> real opencode serve -> fake upstream.

Every response and every stream event the tests see goes through the validating transport:
our spec, and the anthropic SDK's own types in strict mode (contract/anthropic_check.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import httpx2
import pytest

from contract.transport import ValidatingTransport, ValidatingTransport2
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer
from tests.support.opencode_turns import OpenCodeTurns

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": API_KEY}
WEATHER = {
    "name": "get_weather",
    "description": "Get the weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def checked() -> Iterator[ValidatingTransport2]:
    transport = ValidatingTransport2()
    yield transport
    transport.assert_clean()


def sdk(
    gateway: GatewayServer, transport: ValidatingTransport2, **keys: str
) -> anthropic.Anthropic:
    """The anthropic SDK on the gateway (keys: `api_key` or `auth_token`), checked."""
    return anthropic.Anthropic(
        base_url=gateway.url,
        max_retries=0,
        timeout=30,
        http_client=httpx2.Client(transport=transport, timeout=30),
        **(keys or {"api_key": API_KEY}),
    )


@pytest.fixture
def client(gateway: GatewayServer, checked: ValidatingTransport2) -> Iterator[anthropic.Anthropic]:
    with sdk(gateway, checked) as client:
        yield client


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    transport = ValidatingTransport()
    with httpx.Client(
        base_url=gateway.url, headers=ANTHROPIC_HEADERS, transport=transport, timeout=30
    ) as c:
        yield c
    transport.assert_clean()


def test_create_and_what_upstream_received(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("Hello there", usage=fu.Usage(21, 4, cached_tokens=5)))
    raw = client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=64000,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": f"hi {marker}"}],
        stop_sequences=["END"],
        metadata={"user_id": "user-1"},
        extra_body={"temperature": 0.5},  # no longer a parameter of the 2.x SDK
    )
    message = raw.parse()
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.model == MODEL and message.role == "assistant"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
        ("text", "Hello there")
    ]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (16, 4)
    assert message.usage.cache_read_input_tokens == 5

    [received] = fake_upstream.chat_requests(marker)
    assert received.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"hi {marker}"},
    ]
    assert received.body["model"] == "fake-model"
    assert received.body["max_tokens"] == 4096  # 64000 clamped to the model's output limit
    assert received.body["temperature"] == 0.5
    assert received.body["stop"] == ["END"] and received.body["user"] == "user-1"


def test_stream_events_in_order_and_the_final_message(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["One", " two", " three"], usage=fu.Usage(7, 3)))
    with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": marker}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds.count("text") >= 3, "deltas must not be merged into one"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert [b.text for b in final.content if b.type == "text"] == ["One two three"]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 3)


def test_stream_on_the_wire_is_named_events_with_a_ping(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("abc"))
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": marker}],
    }
    with http.stream("POST", "/v1/messages?beta=true", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"]
        lines = list(response.iter_lines())
    names = [line[7:] for line in lines if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"]
    assert names[-1] == "message_stop"


def test_bearer_auth_token_and_beta_route(
    gateway: GatewayServer,
    checked: ValidatingTransport,
    fake_upstream: fu.FakeUpstream,
    marker: str,
) -> None:
    fake_upstream.script(marker, fu.text("beta ok"))
    with sdk(gateway, checked, auth_token=API_KEY) as client:
        message = client.beta.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": marker}],
            betas=["interleaved-thinking-2025-05-14", "context-management-2025-06-27"],
            context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            thinking={"type": "adaptive"},
        )
    assert message.content[0].type == "text" and message.content[0].text == "beta ok"


def test_tool_round_trip(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(
            fu.ToolCall("get_weather", '{"city": "Lima"}', id="call_w1"), content="Let me look."
        ),
        fu.text("It is 18 C in Lima."),
    )
    question = {"role": "user", "content": f"Weather in Lima? {marker}"}
    first = client.messages.create(
        model=MODEL, max_tokens=200, tools=[WEATHER], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    [text, call] = first.content
    assert text.type == "text" and text.text == "Let me look."
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.id == "toolu_call_w1" and call.input == {"city": "Lima"}

    second = client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text == "It is 18 C in Lima."

    _, replay = fake_upstream.chat_requests(marker)
    [tool] = replay.body["tools"]
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["description"] == "Get the weather for a city."
    assistant = replay.body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["id"] == "toolu_call_w1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Lima"}
    assert replay.body["messages"][2] == {
        "role": "tool",
        "tool_call_id": "toolu_call_w1",
        "content": "18 C, sunny",
    }


def test_tool_error_result_and_streamed_tool_use(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Oslo"}')),
        fu.text("The tool failed."),
    )
    question = {"role": "user", "content": f"Oslo? {marker}"}
    with client.messages.stream(
        model=MODEL, max_tokens=200, tools=[WEATHER], messages=[question]
    ) as stream:
        first = stream.get_final_message()
    [call] = first.content
    assert call.type == "tool_use" and call.input == {"city": "Oslo"}
    assert first.stop_reason == "tool_use"
    client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": call.id,
                        "is_error": True,
                        "content": [{"type": "text", "text": "service down"}],
                    }
                ],
            },
        ],
    )
    _, replay = fake_upstream.chat_requests(marker)
    assert replay.body["messages"][2]["role"] == "tool"
    assert replay.body["messages"][2]["content"] == "service down"


def test_thinking_blocks_from_a_reasoning_model(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.text("42", reasoning="Six times seven.", usage=fu.Usage(9, 6, reasoning_tokens=4)),
    )
    message = client.messages.create(
        model="fake/fake-reasoning-model",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": marker}],
    )
    [thinking, text] = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Six times seven."
    assert thinking.signature == ""
    assert text.type == "text" and text.text == "42"
    assert message.usage.output_tokens == 6  # reasoning included, as Anthropic counts it
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["thinking"] == {"type": "enabled", "budgetTokens": 1024}

    with client.messages.stream(
        model="fake/fake-reasoning-model",
        max_tokens=2000,
        messages=[
            {"role": "user", "content": marker},
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": f"again {marker}"},
        ],
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
    assert "thinking_delta" in deltas and "text_delta" in deltas
    replayed = fake_upstream.chat_requests(marker)[-1].body["messages"]
    assert [m["role"] for m in replayed] == ["user", "assistant", "user"]
    assert replayed[1]["content"] == "42"  # the earlier thinking is not replayed


def test_system_message_mid_conversation_and_effort(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("ok"))
    client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Main prompt.",
        output_config={"effort": "medium"},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": marker}]},
            {"role": "system", "content": [{"type": "text", "text": "Environment: linux"}]},  # type: ignore[misc,list-item]
        ],
    )
    [received] = fake_upstream.chat_requests(marker)
    assert [m for m in received.body["messages"] if m["role"] == "system"] == [
        {"role": "system", "content": "Main prompt."},
        {"role": "system", "content": "Environment: linux"},
    ]
    assert received.body["reasoning_effort"] == "medium"


def test_structured_output_format(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    city = {"name": "Lille"}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(city))))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": marker}],
    )
    assert json.loads(message.content[0].text) == city  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


def test_count_tokens_makes_no_model_call(
    client: anthropic.Anthropic, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    before = fake_upstream.next_seq
    small = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": f"Hello, world! {marker}"}]
    )
    bigger = client.messages.count_tokens(
        model=MODEL,
        system="You are a careful assistant.",
        tools=[WEATHER],
        messages=[{"role": "user", "content": f"Hello, world! {marker}"}],
    )
    assert 0 < small.input_tokens < bigger.input_tokens
    assert fake_upstream.next_seq == before


def test_models_in_anthropics_shape(
    client: anthropic.Anthropic, http: httpx.Client, gateway: GatewayServer
) -> None:
    page = client.models.list()
    ids = [model.id for model in page.data]
    assert MODEL in ids and "opencode/default" in ids
    assert page.has_more is False and page.first_id == ids[0] and page.last_id == ids[-1]
    model = client.models.retrieve(MODEL)
    assert model.type == "model" and model.display_name == "Fake model"
    openai_shape = http.get("/v1/models", headers={"anthropic-version": ""}).json()
    assert "data" in openai_shape
    plain = httpx.get(
        f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}
    ).json()
    assert plain["object"] == "list"


def test_head_root_needs_no_key(gateway: GatewayServer) -> None:
    response = httpx.head(f"{gateway.url}/")
    assert response.status_code == 200 and response.content == b""


def test_client_going_away_aborts_the_turn(
    http: httpx.Client,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    fake_upstream.script(marker, fu.text(["a"] * 50, chunk_delay_s=0.2))
    body = {
        "model": MODEL,
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": marker}],
    }
    with http.stream("POST", "/v1/messages", json=body) as response:
        for line in response.iter_lines():
            if "text_delta" in line:
                break
    [upstream] = fake_upstream.wait_for(
        lambda: [r for r in fake_upstream.chat_requests(marker) if r.disconnected_at]
    )
    assert upstream.chunks_sent < 50
    opencode_turns.wait_over(marker)


@pytest.mark.parametrize(
    ("choice", "forced"),
    [({"type": "any"}, "required"), ({"type": "tool", "name": "lookup"}, "lookup")],
    ids=["any", "tool"],
)
def test_forced_tool_choice(
    client: anthropic.Anthropic,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    choice: dict[str, str],
    forced: str,
) -> None:
    fake_upstream.script(marker, fu.echo())
    lookup = {"name": "lookup", "input_schema": {"type": "object"}}
    message = client.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER, lookup],
        tool_choice=choice,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": marker}],
    )
    assert message.stop_reason == "tool_use"
    [call] = message.content
    assert call.type == "tool_use"
    [upstream] = fake_upstream.chat_requests(marker)
    if forced == "required":
        assert upstream.body["tool_choice"] == "required"
        assert call.name in ("get_weather", "lookup")
    else:
        assert [t["function"]["name"] for t in upstream.body["tools"]] == ["lookup"]
        assert call.name == "lookup"
