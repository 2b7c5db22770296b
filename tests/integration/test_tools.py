"""Client tool calling through OpenCode: the client defines and runs tools, OpenCode runs none."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import openai
import pytest

from tests.support import fake_upstream as fu
from tests.support.opencode_turns import OpenCodeTurns

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone.",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string"}},
            "required": ["tz"],
        },
    },
}


def sent_tools(request: fu.RecordedRequest) -> dict[str, Any]:
    return {t["function"]["name"]: t["function"] for t in request.body.get("tools") or []}


def test_tools_reach_upstream_as_defined(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("no tool needed"))
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": marker}], tools=[WEATHER, TIME]
    )  # type: ignore[list-item]
    assert reply.choices[0].message.content == "no tool needed"
    assert reply.choices[0].finish_reason == "stop"
    [received] = fake_upstream.chat_requests(marker)
    tools = sent_tools(received)
    assert set(tools) == {"get_weather", "get_time"}, "only the client's tools, none of OpenCode's"
    for tool in (WEATHER, TIME):
        function = tool["function"]
        assert tools[function["name"]]["description"] == function["description"]  # type: ignore[index]
        assert (
            tools[function["name"]]["parameters"]["properties"]
            == function["parameters"]["properties"]
        )  # type: ignore[index]
        assert (
            tools[function["name"]]["parameters"]["required"] == function["parameters"]["required"]
        )  # type: ignore[index]


def test_single_tool_call_non_stream(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    fake_upstream.script(
        marker, fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Paris"}', id="call_abc"))
    )
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": marker}], tools=[WEATHER]
    )  # type: ignore[list-item]
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.id == "call_abc" and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    opencode_turns.wait_over(marker)
    assert len(fake_upstream.chat_requests(marker)) == 1, "the turn stops at the tool call"


def test_parallel_tool_calls_are_kept_in_order(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(
            fu.ToolCall("get_weather", '{"city": "Oslo"}', id="call_1"),
            fu.ToolCall("get_time", '{"tz": "Europe/Oslo"}', id="call_2"),
        ),
    )
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": marker}],
        tools=[WEATHER, TIME],
        parallel_tool_calls=True,
    )  # type: ignore[list-item]
    calls = reply.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name) for c in calls] == [
        ("call_1", "get_weather"),
        ("call_2", "get_time"),
    ]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Oslo"},
        {"tz": "Europe/Oslo"},
    ]
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["parallel_tool_calls"] is True


def test_streamed_tool_calls_arrive_as_openai_streams_them(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(
            fu.ToolCall("get_weather", '{"city": "Rome", "unit": "c"}', id="call_r"),
            fu.ToolCall("get_time", '{"tz": "Europe/Rome"}', id="call_t"),
            content="Let me check.",
        ),
    )
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": marker}],
            tools=[WEATHER, TIME],
            stream=True,
        )
    )  # type: ignore[list-item]
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    by_index: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        if delta.index not in by_index:
            assert (
                delta.id and delta.type == "function" and delta.function and delta.function.name
            ), "first delta names the call"
            by_index[delta.index] = {"id": delta.id, "name": delta.function.name, "arguments": ""}
        else:
            assert delta.id is None
        by_index[delta.index]["arguments"] += (
            (delta.function.arguments or "") if delta.function else ""
        )
    assert [by_index[i]["id"] for i in sorted(by_index)] == ["call_r", "call_t"]
    assert json.loads(by_index[0]["arguments"]) == {"city": "Rome", "unit": "c"}
    assert json.loads(by_index[1]["arguments"]) == {"tz": "Europe/Rome"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Let me check."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_results_reach_upstream_as_history(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("It is 21 C in Paris."))
    messages: list[Any] = [
        {"role": "user", "content": f"weather? {marker}"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_t1",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz":"Europe/Paris"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": "21 C, sunny"},
        {"role": "tool", "tool_call_id": "call_t1", "content": [{"type": "text", "text": "14:05"}]},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])  # type: ignore[list-item]
    assert reply.choices[0].message.content == "It is 21 C in Paris."
    [received] = fake_upstream.chat_requests(marker)
    sent = received.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    calls = sent[1]["tool_calls"]
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
    ] == [
        ("call_w1", "get_weather", {"city": "Paris"}),
        ("call_t1", "get_time", {"tz": "Europe/Paris"}),
    ]
    assert [(m["tool_call_id"], m["content"]) for m in sent[2:]] == [
        ("call_w1", "21 C, sunny"),
        ("call_t1", "14:05"),
    ]


def test_agent_loop_with_the_sdk(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    """call, result, call, result, answer: the client runs the tools, the gateway carries calls."""
    fake_upstream.script(
        marker,
        # The question alone: the model asks for the weather.
        fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Lima"}')),
        # The weather is in: it asks for the time.
        fu.tool_calls(fu.ToolCall("get_time", '{"tz": "America/Lima"}')),
        # Both are in: it answers.
        fu.text("In Lima it is 18 C at 09:30."),
    )
    local = {
        "get_weather": lambda city, unit="c": f"18 {unit.upper()} in {city}",
        "get_time": lambda tz: f"09:30 in {tz}",
    }
    messages: list[Any] = [{"role": "user", "content": f"Lima? {marker}"}]
    ran: list[str] = []
    for _ in range(5):
        reply = client.chat.completions.create(
            model=MODEL, messages=messages, tools=[WEATHER, TIME]
        )  # type: ignore[list-item]
        message = reply.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            ran.append(call.function.name)
            result = local[call.function.name](**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert message.content == "In Lima it is 18 C at 09:30."
    assert ran == ["get_weather", "get_time"]
    opencode_turns.wait_over(marker)
    requests = fake_upstream.chat_requests(marker)
    assert len(requests) == 3
    assert [r.step for r in requests] == [0, 1, 2], "one upstream call per client request"
    assert requests[2].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": messages[-1]["tool_call_id"],
        "content": "09:30 in America/Lima",
    }


def test_tool_choice_none_offers_no_tools(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("plain answer"))
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": marker}],
        tools=[WEATHER],
        tool_choice="none",
    )  # type: ignore[list-item]
    assert reply.choices[0].message.content == "plain answer"
    [received] = fake_upstream.chat_requests(marker)
    assert not received.body.get("tools")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        ("required", ["get_weather", "get_time"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
    ],
    ids=["required", "named"],
)
def test_forced_tool_choice_makes_the_model_call_a_client_tool(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
    choice: Any,
    offered: list[str],
    stream: bool,
) -> None:
    """One upstream call with tool_choice "required" and the client's tools (the named one
    alone); the answer is that call, under the client's name; nothing runs."""
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall(offered[-1], '{"tz": "UTC"}')))
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": marker}],
        "tools": [WEATHER, TIME],
        "tool_choice": choice,
    }
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        calls = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        name = calls[0].function.name if calls else None
        arguments = "".join(d.function.arguments or "" for d in calls if d.function)
    else:
        reply = client.chat.completions.create(**kwargs)
        [call] = reply.choices[0].message.tool_calls or []
        finish, name, arguments = (
            reply.choices[0].finish_reason,
            call.function.name,
            call.function.arguments,
        )
    assert (finish, name, json.loads(arguments)) == ("tool_calls", offered[-1], {"tz": "UTC"})
    opencode_turns.wait_over(marker)  # one call only: no second step came
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["tool_choice"] == "required"
    # (in OpenCode's order, not the client's)
    assert sorted(t["function"]["name"] for t in received.body["tools"]) == sorted(offered)


def test_after_a_forced_turn_the_next_turn_offers_every_tool_again(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """A prompt's tool map becomes its session's permissions in OpenCode, and sessions are
    pooled: the next turn of the same tool set must not inherit a forced turn's map."""
    for i in range(3):  # more turns than the pool needs to reuse a session
        named = {"type": "function", "function": {"name": "get_time"}}
        fake_upstream.script(f"{marker} forced {i}", fu.tool_calls(fu.ToolCall("get_time", "{}")))
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"{marker} forced {i}"}],
            tools=[WEATHER, TIME],
            tool_choice=named,
        )  # type: ignore[list-item, call-overload]
        fake_upstream.script(f"{marker} auto {i}", fu.text("no tool"))
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"{marker} auto {i}"}],
            tools=[WEATHER, TIME],
        )  # type: ignore[list-item]
        assert reply.choices[0].message.content == "no tool"
        [received] = fake_upstream.chat_requests(f"{marker} auto {i}")
        assert received.body.get("tool_choice") == "auto"
        assert {t["function"]["name"] for t in received.body["tools"]} == {
            "get_weather",
            "get_time",
        }


def test_a_forced_turn_answered_in_text_is_that_text(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("I would rather not call a tool."))
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": marker}],
        tools=[WEATHER],
        tool_choice="required",
    )  # type: ignore[list-item, call-overload]
    assert reply.choices[0].message.content == "I would rather not call a tool."
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls


def test_a_named_tool_choice_must_name_one_of_the_tools(client: openai.OpenAI, marker: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": marker}],
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )  # type: ignore[list-item, call-overload]
    assert info.value.body["param"] == "tool_choice.function.name"  # type: ignore[index]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("functions", [WEATHER["function"]]),
        ("function_call", "auto"),
    ],
)
def test_unsupported_tool_fields_are_400(
    client: openai.OpenAI, marker: str, field: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": marker}],
            tools=[WEATHER],
            **{field: value},
        )  # type: ignore[list-item, call-overload]
    assert info.value.body["param"] == field  # type: ignore[index]


def test_missing_tool_result_is_400(client: openai.OpenAI, marker: str) -> None:
    messages: list[Any] = [
        {"role": "user", "content": marker},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert "call_x" in info.value.body["message"]  # type: ignore[index]


def test_opencode_tools_never_run(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    """The upstream asks for OpenCode's own tools, and for a client tool named like one: nothing
    runs."""
    target = f"/tmp/opencode-openai-tool-{time.time_ns()}"
    bash_named_tool = {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "The client's own bash.",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
    fake_upstream.script(
        marker,
        fu.tool_calls(
            fu.ToolCall(
                "bash", json.dumps({"command": f"touch {target}-bash", "description": "x"})
            ),
            fu.ToolCall("write", json.dumps({"filePath": f"{target}-write", "content": "x"})),
            fu.ToolCall(
                "edit",
                json.dumps({"filePath": "/etc/hostname", "oldString": "a", "newString": "b"}),
            ),
            fu.ToolCall("read", json.dumps({"filePath": "/etc/passwd"})),
            fu.ToolCall("webfetch", json.dumps({"url": "http://127.0.0.1:9/", "format": "text"})),
            fu.ToolCall(
                "task", json.dumps({"description": "x", "prompt": "x", "subagent_type": "general"})
            ),
        ),
    )
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": marker}],
        tools=[WEATHER, bash_named_tool],
    )  # type: ignore[list-item]
    calls = reply.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["bash"], "only the client's tools come back"
    assert reply.choices[0].finish_reason == "tool_calls"
    # Once OpenCode is done with the turn, any tool it ran has run.
    opencode_turns.wait_over(marker)
    assert not os.path.exists(f"{target}-bash") and not os.path.exists(f"{target}-write")
    assert len(fake_upstream.chat_requests(marker)) == 1
