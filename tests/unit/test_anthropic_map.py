"""Pure translation: Anthropic Messages request -> TurnPlan (-> OpenCode prompt), TurnEvents ->
Anthropic stream events and message, errors, the model list, the token estimate.

What the spec refuses (unsupported values, malformed blocks) is tested in
test_anthropic_validation.py; here, what a well-typed request means. Every message and event
built here is also held to the anthropic SDK's types (contract/anthropic_check.py)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contract.anthropic_check import anthropic_types
from contract.openapi_check import our_spec
from opencode_openai.backend.catalog import catalog_from_opencode
from opencode_openai.backend.prompt import prompt_body
from opencode_openai.core.errors import (
    AuthenticationFailed,
    BackendTimeout,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamFailed,
)
from opencode_openai.core.events import (
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)
from opencode_openai.core.plan import (
    AssistantMessage,
    FilePart,
    ForcedTool,
    ImagePart,
    OutputFormat,
    TextPart,
    ToolCall,
    TurnPlan,
    UserMessage,
)
from opencode_openai.protocols.anthropic import (
    anthropic_error,
    anthropic_status,
    count_plan_tokens,
    message_from_events,
    model_page,
    new_meta,
    plan_from_request,
    sse_stream,
)
from opencode_openai.protocols.anthropic.response import tool_use_id
from opencode_openai.protocols.anthropic.tokens import count_text_tokens

PROVIDERS = {
    "providers": [
        {
            "id": "p",
            "models": {
                "text": {"name": "Text", "limit": {"context": 1000, "output": 100}},
                "vision": {
                    "name": "Vision",
                    "capabilities": {"input": {"image": True}},
                    "release_date": "2025-01-02",
                },
            },
        },
    ],
    "default": {"p": "text"},
}
CATALOG = catalog_from_opencode(PROVIDERS, {})
USER = {"role": "user", "content": "hi"}
TOOL = {"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object"}}


def plan(*messages: dict[str, Any], **body: Any) -> TurnPlan:
    request = {"model": "p/text", "max_tokens": 10, "messages": list(messages) or [USER], **body}
    assert our_spec().request_body("/v1/messages", "post", request) == []
    return plan_from_request(request, CATALOG)[0]


def plugin_request(turn: TurnPlan) -> dict[str, Any]:
    request: dict[str, Any] = prompt_body(turn)["parts"][0]["metadata"]["opencode-openai"]
    return request


# -- request -> plan --------------------------------------------------------------------------


def test_model_is_resolved_and_the_answer_names_the_id_asked_for() -> None:
    turn, options = plan_from_request(
        {"model": "opencode/default", "max_tokens": 5, "messages": [USER]}, CATALOG
    )
    assert turn.model.id == "p/text"
    assert options.model == "opencode/default" and options.stream is False


def test_unknown_model_is_a_404_saying_how_to_choose_or_alias() -> None:
    with pytest.raises(NotFound) as caught:
        plan(model="claude-opus-5-5")
    message = caught.value.message
    assert "claude-opus-5-5" in message and "GET /v1/models" in message
    assert "--model-alias claude-opus-5-5=provider/model" in message
    body = anthropic_error(caught.value)
    assert body["error"]["type"] == "not_found_error" and anthropic_status(caught.value) == 404


def test_system_string_blocks_and_mid_conversation_system_messages_in_order() -> None:
    turn = plan(
        {"role": "user", "content": [{"type": "text", "text": "q1"}]},
        {"role": "system", "content": [{"type": "text", "text": "env", "cache_control": {}}]},
        {"role": "assistant", "content": "a1"},
        {"role": "system", "content": "late"},
        {"role": "user", "content": "q2"},
        system=[{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"}],
    )
    assert turn.system == ("S1", "S2", "env", "late")
    assert turn.messages == (
        UserMessage((TextPart("q1"),)),
        AssistantMessage("a1"),
        UserMessage((TextPart("q2"),)),
    )
    assert plan(system="Be brief.").system == ("Be brief.",)


def test_sampling_and_claude_code_fields() -> None:
    turn = plan(
        max_tokens=64000,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END", "STOP"],
        metadata={"user_id": '{"device_id":"d"}'},
        output_config={"effort": "medium"},
        thinking={"type": "adaptive", "display": "omitted"},
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        service_tier="auto",
    )
    s = turn.sampling
    assert (s.temperature, s.top_p, s.top_k) == (0.2, 0.9, 40)
    assert s.max_output_tokens == 100  # clamped to the model's output limit
    assert s.stop == ("END", "STOP") and s.user == '{"device_id":"d"}'
    assert s.reasoning_effort == "medium"
    assert s.thinking is None  # adaptive: the model decides, nothing is sent
    params = plugin_request(turn)["params"]
    assert params["topK"] == 40 and params["maxOutputTokens"] == 100
    assert params["options"] == {
        "stop": ["END", "STOP"],
        "user": '{"device_id":"d"}',
        "reasoningEffort": "medium",
    }


def test_max_tokens_over_the_limit_is_refused_when_not_clamping() -> None:
    request = {"model": "p/text", "max_tokens": 5000, "messages": [USER]}
    with pytest.raises(InvalidRequest) as caught:
        plan_from_request(request, CATALOG, clamp_max_tokens=False)
    assert caught.value.param == "max_tokens"


def test_thinking_enabled_and_disabled_are_forwarded() -> None:
    enabled = plan(thinking={"type": "enabled", "budget_tokens": 2048})
    assert plugin_request(enabled)["params"]["options"]["thinking"] == {
        "type": "enabled",
        "budgetTokens": 2048,
    }
    disabled = plan(thinking={"type": "disabled"})
    assert plugin_request(disabled)["params"]["options"]["thinking"] == {"type": "disabled"}
    assert "options" not in plugin_request(plan(thinking={"type": "between_tools"}))["params"]


def test_tools_custom_kept_server_and_deferred_left_out() -> None:
    turn = plan(
        tools=[
            TOOL,
            {"type": "custom", "name": "Read", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"},
            {"name": "Later", "input_schema": {"type": "object"}, "defer_loading": True},
        ]
    )
    assert [t.name for t in turn.tools] == ["get_weather", "Read"]
    assert turn.tools[0].description == "Weather."
    assert turn.tool_choice is None and turn.sampling.parallel_tool_calls is None


def test_tool_choice_none_offers_nothing_and_duplicates_are_refused() -> None:
    assert plan(tools=[TOOL, TOOL], tool_choice={"type": "none"}).tools == ()
    with pytest.raises(InvalidRequest) as caught:
        plan(tools=[TOOL, TOOL])
    assert caught.value.param == "tools[1].name"


def test_forced_tool_choice_maps_to_forced_tool() -> None:
    assert plan(tools=[TOOL], tool_choice={"type": "any"}).tool_choice == ForcedTool(None)
    named = plan(tools=[TOOL], tool_choice={"type": "tool", "name": "get_weather"})
    assert named.tool_choice == ForcedTool("get_weather")
    single = plan(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert single.sampling.parallel_tool_calls is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tool_choice": {"type": "any"}}, "tool_choice"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "other"}}, "tool_choice"),
        (
            {
                "tools": [TOOL],
                "tool_choice": {"type": "any"},
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "thinking",
        ),
    ],
    ids=["any-without-tools", "unknown-named-tool", "thinking-with-forced-tool"],
)
def test_forced_tool_choice_rules(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(**body)
    assert caught.value.param == param


def test_output_config_format_is_structured_output() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    turn = plan(output_config={"format": {"type": "json_schema", "schema": schema}})
    assert turn.output == OutputFormat(schema)
    beta = plan(output_format={"type": "json_schema", "schema": schema})
    assert beta.output == OutputFormat(schema)


def test_tool_round_trip_with_results_errors_and_images() -> None:
    png = base64.b64encode(b"png").decode()
    request = {
        "model": "p/vision",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": 1}},
                    {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "no such "},
                            {"type": "text", "text": "file"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": png,
                                },
                            },
                        ],
                    },
                    {"type": "text", "text": "and now?"},
                ],
            },
        ],
    }
    assert our_spec().request_body("/v1/messages", "post", request) == []
    turn, _ = plan_from_request(request, CATALOG)
    assert turn.messages == (
        UserMessage((TextPart("weather?"),)),
        AssistantMessage(
            "Checking.",
            (
                ToolCall("toolu_1", "get_weather", {"c": 1}, "18 C"),
                ToolCall("toolu_2", "Read", {}, "no such file", is_error=True),
            ),
        ),
        UserMessage((TextPart("and now?"), ImagePart(f"data:image/png;base64,{png}", "image/png"))),
    )
    parts = plugin_request(turn)["messages"][1]["parts"]
    assert parts[1]["state"]["status"] == "completed" and parts[1]["state"]["output"] == "18 C"
    assert parts[2]["state"] == {
        "status": "error",
        "input": {},
        "error": "no such file",
        "metadata": {},
        "time": {"start": 0, "end": 0},
    }


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {"role": "user", "content": "forgot the result"},
            ],
            "messages[2]",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
            ],
            "messages[1]",
        ),
        (
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope"}]}],
            "messages[0].content[0].tool_use_id",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1"},
                        {"type": "tool_result", "tool_use_id": "t1"},
                    ],
                },
            ],
            "messages[2].content[1].tool_use_id",
        ),
    ],
    ids=["result-missing", "conversation-ends-at-the-call", "unknown-id", "answered-twice"],
)
def test_tool_use_order_is_anthropics(messages: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(*messages)
    assert caught.value.param == param


def test_images_need_an_image_model_and_documents_become_files_or_text() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}}
    with pytest.raises(InvalidRequest) as caught:
        plan({"role": "user", "content": [image]})
    assert caught.value.param == "messages[0].content[0]"
    assert caught.value.code == "model_not_multimodal"
    pdf = base64.b64encode(b"%PDF-1.4 /Type /Page /Type /Pages").decode()
    turn = plan(
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
                    "title": "a.pdf",
                },
                {"type": "document", "source": {"type": "url", "url": "https://x.test/b.pdf"}},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "body"},
                    "title": "Notes",
                },
                {
                    "type": "document",
                    "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]},
                },
            ],
        }
    )
    [message] = turn.messages
    assert isinstance(message, UserMessage)
    assert message.parts == (
        FilePart(f"data:application/pdf;base64,{pdf}", "application/pdf", "a.pdf"),
        FilePart("https://x.test/b.pdf", "application/pdf", "document.pdf"),
        TextPart("Notes\n\nbody"),
        TextPart("inner"),
    )
    assert plugin_request(turn)["messages"][0]["parts"][0] == {
        "type": "file",
        "mime": "application/pdf",
        "url": f"data:application/pdf;base64,{pdf}",
        "filename": "a.pdf",
    }


# -- events -> message and stream -------------------------------------------------------------

TOOL_EVENTS: list[TurnEvent] = [
    ReasoningDelta("think"),
    ReasoningDelta("ing"),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallDelta(0, id="call_a:1", name="get_weather"),
    ToolCallDelta(1, id="call_b", name="Read"),
    ToolCallDelta(1, arguments='{"file_path": "/x"}'),
    ToolCallDelta(0, arguments='{"city": "Lima"}'),
    TurnFinished("tool_calls", Usage(prompt_tokens=30, completion_tokens=9, cached_tokens=10)),
]


def test_message_is_the_fold_of_the_stream() -> None:
    message = message_from_events(new_meta("claude-x"), TOOL_EVENTS)
    assert (
        anthropic_types().validate(__import__("anthropic").types.Message, json.dumps(message)) == []
    )
    assert our_spec().validate("AnthropicMessage", message) == []
    assert message["id"].startswith("msg_") and message["model"] == "claude-x"
    assert message["content"] == [
        {"type": "thinking", "thinking": "thinking", "signature": ""},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_call_b", "name": "Read", "input": {"file_path": "/x"}},
        {
            "type": "tool_use",
            "id": "toolu_call_a_1",
            "name": "get_weather",
            "input": {"city": "Lima"},
        },
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
    }


def test_a_signed_thinking_block_carries_its_signature() -> None:
    events: list[TurnEvent] = [
        ReasoningDelta("mull"),
        ReasoningSignature("EqQBCkgIARABGAIiQL"),
        TextDelta("answer"),
        TurnFinished("stop", Usage()),
    ]
    message = message_from_events(new_meta("claude-x"), events)
    assert message["content"][0] == {
        "type": "thinking",
        "thinking": "mull",
        "signature": "EqQBCkgIARABGAIiQL",
    }
    assert (
        anthropic_types().validate(__import__("anthropic").types.Message, json.dumps(message)) == []
    )


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("content_filter", "refusal")],
)
def test_stop_reasons(finish: Any, reason: str) -> None:
    message = message_from_events(new_meta("m"), [TextDelta("x"), TurnFinished(finish, Usage())])
    assert message["stop_reason"] == reason


def test_tool_use_ids() -> None:
    assert tool_use_id("toolu_abc") == "toolu_abc"
    assert tool_use_id("call 1|x") == "toolu_call_1_x"
    assert tool_use_id("").startswith("toolu_") and len(tool_use_id("")) > 10


async def _events(items: list[TurnEvent | float]) -> AsyncIterator[TurnEvent]:
    for item in items:
        if isinstance(item, float):
            await asyncio.sleep(item)
        else:
            yield item


def _parse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in raw.decode().split("\n\n"):
        if chunk:
            name, data = chunk.split("\n")
            out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def _stream(items: list[TurnEvent | float], interval: float = 10.0) -> list[Any]:
    frames = sse_stream(new_meta("m"), _events(items), ping_interval_s=interval)  # type: ignore[arg-type]
    return _parse(b"".join([frame async for frame in frames]))


async def test_stream_events_are_named_valid_and_ordered() -> None:
    events = await _stream(list(TOOL_EVENTS))
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    for name, data in events:
        assert data["type"] == name
        assert anthropic_types().message_event(data) == []
        assert our_spec().message_event(data) == []
    assert (
        events[0][1]["message"]["content"] == [] and events[0][1]["message"]["stop_reason"] is None
    )
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


async def test_pings_while_the_turn_is_silent() -> None:
    events = await _stream(
        [TextDelta("a"), 0.35, TextDelta("b"), TurnFinished("stop", Usage())], 0.1
    )
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    between = names[
        names.index("content_block_delta") + 1 : len(names)
        - names[::-1].index("content_block_delta")
        - 1
    ]
    assert between and set(between) == {"ping"}


async def test_an_error_after_the_start_is_an_error_event_that_ends_the_stream() -> None:
    async def failing() -> AsyncIterator[TurnEvent]:
        yield TextDelta("partial")
        raise UpstreamFailed("the provider fell over")

    frames = sse_stream(new_meta("m"), failing())  # type: ignore[arg-type]
    events = _parse(b"".join([frame async for frame in frames]))
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "the provider fell over"}},
    )
    assert "message_stop" not in [name for name, _ in events]


async def test_closing_the_stream_closes_the_turn_even_while_it_is_silent() -> None:
    closed = asyncio.Event()

    async def silent() -> AsyncIterator[TurnEvent]:
        try:
            yield TextDelta("a")
            await asyncio.sleep(60)
            yield TextDelta("never")
        finally:
            closed.set()

    frames = sse_stream(new_meta("m"), silent(), ping_interval_s=0.05)  # type: ignore[arg-type]
    seen = [await anext(frames) for _ in range(6)]  # start, ping, block start, delta, pings
    assert b"event: ping" in seen[-1]
    await frames.aclose()
    await asyncio.wait_for(closed.wait(), 2)


# -- errors, models, tokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (AuthenticationFailed("no key"), 401, "authentication_error"),
        (NotFound("nothing"), 404, "not_found_error"),
        (PayloadTooLarge("big"), 413, "request_too_large"),
        (RateLimited("full"), 529, "overloaded_error"),
        (UpstreamFailed("slow down", upstream_status=429), 429, "rate_limit_error"),
        (UpstreamFailed("boom"), 502, "api_error"),
        (BackendTimeout("late"), 504, "timeout_error"),
    ],
)
def test_errors_in_anthropics_shape(error: Any, status: int, kind: str) -> None:
    body = anthropic_error(error)
    assert anthropic_status(error) == status and body["error"]["type"] == kind
    assert (
        anthropic_types().validate(
            __import__("anthropic").types.shared.ErrorResponse, json.dumps(body)
        )
        == []
    )
    if status == 401:
        assert "x-api-key" in body["error"]["message"]


def test_model_page_is_anthropics_list() -> None:
    page = model_page((i, CATALOG.resolve(i)) for i in CATALOG.ids())  # type: ignore[misc]
    assert page["first_id"] == "p/text" and page["last_id"] == "opencode/default"
    assert page["has_more"] is False
    assert page["data"][1] == {
        "type": "model",
        "id": "p/vision",
        "display_name": "Vision",
        "created_at": "2025-01-02T00:00:00Z",
        "lifecycle": "active",
    }
    assert page["data"][0]["max_tokens"] == 100 and page["data"][0]["max_input_tokens"] == 1000
    from anthropic.pagination import SyncPage
    from anthropic.types import ModelInfo

    assert anthropic_types().validate(SyncPage[ModelInfo], json.dumps(page)) == []
    assert our_spec().validate("AnthropicModelList", page) == []


def test_token_estimate() -> None:
    assert count_text_tokens("") == 0
    assert count_text_tokens("Hello, world!") == 4  # Hello , world !
    assert count_text_tokens("internationalization") == 4
    small = count_plan_tokens(plan())
    with_tools = count_plan_tokens(plan(tools=[TOOL]))
    assert 0 < small < with_tools
    pdf = base64.b64encode(b"/Type /Page /Type /Page /Type /Pages").decode()
    doc = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf},
    }
    assert count_plan_tokens(plan({"role": "user", "content": [doc]})) >= 3000
