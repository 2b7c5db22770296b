"""Pure translation: OpenAI request -> TurnPlan (-> OpenCode prompt), TurnEvents -> chunks.

What the spec refuses (unsupported values, malformed parts) is tested in test_request_validation.py;
here, what a well-typed request means."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencode_openai.backend.catalog import catalog_from_opencode
from opencode_openai.backend.prompt import prompt_body
from opencode_openai.core.errors import InvalidRequest, ModelNotFound
from opencode_openai.core.events import (
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)
from opencode_openai.core.plan import (
    AssistantMessage,
    ImagePart,
    OutputFormat,
    Sampling,
    TextPart,
    ToolCall,
    TurnPlan,
    UserMessage,
)
from opencode_openai.protocols.openai_chat import (
    completion_from_events,
    new_meta,
    plan_from_request,
    sse_stream,
)

PROVIDERS = {
    "providers": [
        {
            "id": "p",
            "models": {
                "text": {"name": "Text", "capabilities": {"input": {"image": False}}},
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


def plan(**body: Any) -> tuple[TurnPlan, Any]:
    return plan_from_request(
        {"model": "p/text", "messages": [{"role": "user", "content": "hi"}], **body}, CATALOG
    )


def plugin_request(turn: TurnPlan) -> dict[str, Any]:
    """What the plugin reads from the prompt OpenCode receives for this plan."""
    request: dict[str, Any] = prompt_body(turn)["parts"][0]["metadata"]["opencode-openai"]
    return request


def test_catalog_ids_alias_and_created() -> None:
    assert CATALOG.ids() == ["p/text", "p/vision", "opencode/default"]
    assert CATALOG.resolve("opencode/default") is CATALOG.models["p/text"]
    assert CATALOG.models["p/vision"].created == 1735776000
    assert CATALOG.models["p/text"].created == 0


def test_new_aliases_replace_the_configured_ones_and_keep_opencode_default() -> None:
    first = catalog_from_opencode(PROVIDERS, {}, (("fast", "p/text"),))
    again = first.with_aliases((("eyes", "p/vision"),))
    assert again.aliases == {"opencode/default": "p/text", "eyes": "p/vision"}
    assert again.resolve("fast") is None and again.resolve("eyes") is again.models["p/vision"]
    renamed = first.with_aliases((("opencode/default", "p/vision"),))
    assert renamed.resolve("opencode/default") is renamed.models["p/vision"]
    assert renamed.with_aliases(()).aliases["opencode/default"] == "p/text"
    assert first.with_aliases((("ghost", "q/none"),)).unknown_aliases() == {"ghost": "q/none"}


def test_unknown_model() -> None:
    with pytest.raises(ModelNotFound):
        plan(model="q/none")


def test_system_messages_and_turns() -> None:
    turn, options = plan(
        messages=[
            {"role": "system", "content": "s1"},
            {"role": "developer", "content": [{"type": "text", "text": "d1"}]},
            {"role": "user", "content": "u1"},
            {"role": "assistant", "content": None},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
        ]
    )
    assert turn.system == ("s1", "d1")
    assert [type(m) for m in turn.messages] == [UserMessage, AssistantMessage, UserMessage]
    assert turn.messages[2] == UserMessage((TextPart("a"), TextPart("b")))
    request = plugin_request(turn)
    assert request["system"] == ["s1", "d1"]
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert request["messages"][2]["parts"] == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]
    assert options.model == "p/text" and not options.stream


def test_sampling_params_become_plugin_params() -> None:
    turn, _ = plan(
        temperature=0.2,
        top_p=0.9,
        max_tokens=10,
        max_completion_tokens=20,
        seed=7,
        stop="x",
        presence_penalty=1,
        frequency_penalty=-1,
        user="u",
        reasoning_effort="high",
    )
    assert turn.sampling == Sampling(
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=20,
        stop="x",
        seed=7,
        presence_penalty=1,
        frequency_penalty=-1,
        user="u",
        reasoning_effort="high",
    )
    assert plugin_request(turn)["params"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 20,
        "options": {
            "seed": 7,
            "stop": "x",
            "presence_penalty": 1,
            "frequency_penalty": -1,
            "user": "u",
            "reasoningEffort": "high",
        },
    }


def test_parallel_tool_calls_only_with_tools() -> None:
    assert "options" not in plugin_request(plan(parallel_tool_calls=False)[0])["params"]
    tool = {"type": "function", "function": {"name": "f"}}
    with_tools = plan(parallel_tool_calls=False, tools=[tool])[0]
    assert plugin_request(with_tools)["params"]["options"] == {"parallel_tool_calls": False}


def test_response_format() -> None:
    assert plan(response_format={"type": "text"})[0].output is None
    assert plan(response_format={"type": "json_object"})[0].output == OutputFormat(
        {"type": "object"}
    )
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    turn = plan(
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    )[0]
    assert turn.output == OutputFormat(schema)
    assert prompt_body(turn)["format"] == {"type": "json_schema", "schema": schema, "retryCount": 0}


def test_images() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}
    turn, _ = plan(model="p/vision", messages=[{"role": "user", "content": [image]}])
    assert turn.messages[0] == UserMessage(
        (ImagePart("data:image/jpeg;base64,AAAA", "image/jpeg"),)
    )
    assert plugin_request(turn)["messages"][0]["parts"] == [
        {
            "type": "file",
            "mime": "image/jpeg",
            "url": "data:image/jpeg;base64,AAAA",
            "filename": "image",
        }
    ]
    web = {"type": "image_url", "image_url": {"url": "https://example.test/cat.webp?x=1"}}
    web_plan = plan(model="p/vision", messages=[{"role": "user", "content": [web]}])[0]
    assert plugin_request(web_plan)["messages"][0]["parts"][0]["mime"] == "image/webp"
    with pytest.raises(InvalidRequest) as info:
        plan(messages=[{"role": "user", "content": [image]}])
    assert info.value.code == "model_not_multimodal"


def test_tools_and_tool_history() -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
    }
    turn, _ = plan(
        tools=[tool],
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
    )
    assert [(t.name, t.description) for t in turn.tools] == [("f", "d")]
    assert turn.messages[1] == AssistantMessage("", (ToolCall("c1", "f", {"x": 1}, "done"),))
    tool_part = plugin_request(turn)["messages"][1]["parts"][1]
    assert tool_part["callID"] == "c1" and tool_part["tool"] == "f"
    assert tool_part["state"]["input"] == {"x": 1} and tool_part["state"]["output"] == "done"
    assert plan(tools=[tool], tool_choice="none")[0].tools == ()


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "tool", "tool_call_id": "nope", "content": "x"}],
        [
            {"role": "user", "content": "q"},
            {"role": "tool", "tool_call_id": "nope", "content": "x"},
        ],
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
        ],
    ],
)
def test_bad_conversations(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidRequest):
        plan(messages=messages)


def test_an_empty_user_message_still_reaches_the_model() -> None:
    """OpenCode drops empty user text, and the message with it: it goes as one space."""
    turn, _ = plan(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}])
    assert turn.messages == (UserMessage((TextPart(""),)),)
    assert plugin_request(turn)["messages"] == [
        {"role": "user", "parts": [{"type": "text", "text": " "}]}
    ]
    absent = plan(messages=[{"role": "user"}])[0]
    assert plugin_request(absent)["messages"] == plugin_request(turn)["messages"]


def test_a_conversation_without_a_user_message_is_sent_as_it_is() -> None:
    """OpenAI accepts it (contract/test_openai_requests.py holds the spec to that)."""
    turn, _ = plan(
        messages=[{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    )
    assert turn.system == ("s",) and turn.messages == (AssistantMessage("a"),)
    assert plugin_request(turn)["messages"] == [
        {"role": "assistant", "parts": [{"type": "text", "text": "a"}]}
    ]


EVENTS: list[TurnEvent] = [
    ReasoningDelta("think "),
    ReasoningDelta("hard"),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallDelta(0, id="c1", name="f"),
    ToolCallDelta(0, arguments='{"a":'),
    ToolCallDelta(0, arguments="1}"),
    TurnFinished("tool_calls", Usage(10, 5, 2, 1)),
]


async def _aiter(events: list[TurnEvent]) -> AsyncIterator[TurnEvent]:
    for event in events:
        yield event


def _stream(events: list[TurnEvent]) -> list[dict[str, Any]]:
    async def collect() -> list[bytes]:
        return [
            frame
            async for frame in sse_stream(new_meta("p/text"), _aiter(events), include_usage=True)
        ]

    frames = asyncio.run(collect())
    assert frames[-1] == b"data: [DONE]\n\n"
    return [json.loads(f[6:]) for f in frames[:-1]]


def test_stream_and_non_stream_say_the_same() -> None:
    completion = completion_from_events(new_meta("p/text"), EVENTS)
    chunks = _stream(EVENTS)
    message = completion["choices"][0]["message"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == message["content"] == "Hello"
    assert (
        "".join(d.get("reasoning_content") or "" for d in deltas)
        == message["reasoning_content"]
        == "think hard"
    )
    args = "".join(
        tc["function"].get("arguments", "") for d in deltas for tc in d.get("tool_calls", [])
    )
    assert args == message["tool_calls"][0]["function"]["arguments"] == '{"a":1}'
    assert (
        [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
        == completion["choices"][0]["finish_reason"]
        == "tool_calls"
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == completion["usage"]
    assert completion["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }


def test_stream_error_becomes_an_error_event_then_done() -> None:
    async def failing() -> AsyncIterator[TurnEvent]:
        yield TextDelta("partial")
        raise InvalidRequest("boom")

    async def collect() -> list[bytes]:
        return [f async for f in sse_stream(new_meta("m"), failing(), include_usage=False)]

    frames = asyncio.run(collect())
    assert frames[-1] == b"data: [DONE]\n\n"
    assert json.loads(frames[-2][6:]) == {
        "error": {"message": "boom", "type": "invalid_request_error", "param": None, "code": None}
    }
