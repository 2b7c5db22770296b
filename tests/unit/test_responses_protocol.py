"""Pure translation for the Responses API: request -> TurnPlan, TurnEvents -> events and Response.

Every event and response built here is held to both contracts (our spec and OpenAI's own
schemas), and the stream rules of contract/transport.py; the JSON answer must be the
response the stream's last event carries. Codex CLI's captured requests (tests/unit/data/,
recorded from `codex exec` 0.171.0) must pass the spec and become the plan Codex means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from connexion.json_schema import resolve_refs

from contract.openai_check import openai_schemas
from contract.openapi_check import our_spec
from contract.transport import ResponsesStreamCheck, default_contracts
from opencode_openai.app import load_spec
from opencode_openai.app.body_validator import check_body
from opencode_openai.backend.catalog import catalog_from_opencode
from opencode_openai.core.errors import (
    BackendTimeout,
    InvalidRequest,
    ModelNotFound,
    UnsupportedParameter,
)
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
    ForcedTool,
    ImagePart,
    OutputFormat,
    TextPart,
    ToolCall,
    UserMessage,
)
from opencode_openai.protocols.openai_responses import (
    ResponseBuilder,
    conversation_of,
    input_item_page,
    new_meta,
    plan_from_request,
    response_from_events,
)
from opencode_openai.protocols.openai_responses.sse import frame

DATA = Path(__file__).resolve().parent / "data"
PROVIDERS = {
    "providers": [
        {
            "id": "p",
            "models": {
                "text": {"name": "Text", "capabilities": {"input": {"image": False}}},
                "vision": {"name": "Vision", "capabilities": {"input": {"image": True}}},
            },
        },
    ],
    "default": {"p": "text"},
}
CATALOG = catalog_from_opencode(PROVIDERS, {})
SPEC = resolve_refs(load_spec())
REQUEST = SPEC["paths"]["/v1/responses"]["post"]["requestBody"]["content"]["application/json"][
    "schema"
]


def codex(name: str = "codex-request.json") -> dict[str, Any]:
    body: dict[str, Any] = json.loads((DATA / name).read_text())
    return {**body, "model": "p/text"}


def plan(**body: Any) -> tuple[Any, Any]:
    return plan_from_request({"model": "p/text", "input": "hi", **body}, CATALOG)


def stream_of(body: dict[str, Any], events: list[TurnEvent]) -> tuple[list[dict[str, Any]], Any]:
    """The stream events for `events`, each checked by both contracts and the stream rules."""
    _, options = plan_from_request(body, CATALOG)
    builder = ResponseBuilder(new_meta(), options)
    out = builder.started()
    for event in events:
        out += builder.feed(event)
    check = ResponsesStreamCheck(default_contracts())
    problems = [p for event in out for p in check.feed(frame(event))] + check.end()
    assert problems == []
    return out, options


def json_answer(body: dict[str, Any], events: list[TurnEvent]) -> dict[str, Any]:
    _, options = plan_from_request(body, CATALOG)
    response = response_from_events(ResponseBuilder(new_meta(), options), events)
    assert our_spec().validate("Response", response) == []
    assert openai_schemas().validate("Response", response) == []
    return response


def same_but_ids(a: Any, b: Any) -> bool:
    """Equal, except for the generated ids and times (two builders make different ones)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: strip(v)
                for k, v in value.items()
                if k not in ("id", "created_at", "completed_at", "item_id")
            }
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return bool(strip(a) == strip(b))


# -- requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "codex-request.json",
        "codex-request-function-call-output.json",
        "codex-request-reasoning-replay.json",
    ],
)
def test_codex_requests_pass_the_spec(name: str) -> None:
    check_body(REQUEST, codex(name))
    assert our_spec().request_body("/v1/responses", "post", codex(name)) == []


def test_codex_request_becomes_its_plan() -> None:
    turn, options = plan_from_request(codex(), CATALOG)
    body = codex()
    developer = [
        "".join(part["text"] for part in i["content"])
        for i in body["input"]
        if i["role"] == "developer"
    ]
    assert turn.system == tuple(developer) and len(developer) == 2
    users = [i["content"][0]["text"] for i in body["input"] if i["role"] == "user"]
    assert turn.messages == tuple(UserMessage((TextPart(text),)) for text in users)
    names = [tool.name for tool in turn.tools]
    functions = [t["name"] for t in body["tools"] if t["type"] == "function"]
    [namespace] = [t for t in body["tools"] if t["type"] == "namespace"]
    inner = [f"multi_agent_v1__{t['name']}" for t in namespace["tools"]]
    assert names == functions[:4] + inner + functions[4:]
    assert "web_search" not in json.dumps([tool.as_json() for tool in turn.tools])
    spawn = next(tool for tool in turn.tools if tool.name == "multi_agent_v1__spawn_agent")
    assert spawn.description.startswith(namespace["description"])
    exec_command = next(t for t in body["tools"] if t.get("name") == "exec_command")
    assert turn.tools[0].parameters == exec_command["parameters"]
    assert turn.tool_choice is None
    assert options.store is False and options.stream is True and options.reasoning_summary
    assert turn.sampling.parallel_tool_calls is True


def test_codex_tool_round_trip_replays_the_call_and_its_output() -> None:
    turn, _ = plan_from_request(codex("codex-request-function-call-output.json"), CATALOG)
    *_, last = turn.messages
    assert isinstance(last, AssistantMessage)
    [call] = last.tool_calls
    assert call.name == "exec_command" and call.id == "call_0001"
    assert "hello-from-tool" in call.result
    assert call.arguments["cmd"].startswith("echo hello-from-tool")


def test_codex_reasoning_replay_is_accepted_and_not_replayed() -> None:
    turn, _ = plan_from_request(codex("codex-request-reasoning-replay.json"), CATALOG)
    assert "ENC-rs_0001" not in repr(turn)
    assert isinstance(turn.messages[-1], AssistantMessage)


def test_input_forms_instructions_and_sampling() -> None:
    turn, options = plan(
        input=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "input_text", "text": "a"}]},
            {"type": "message", "role": "assistant", "content": "b"},
            {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
            {"role": "user", "content": "c"},
        ],
        instructions="first",
        temperature=0.3,
        top_p=0.5,
        max_output_tokens=99,
        reasoning={"effort": "high"},
        user="u1",
        metadata={"k": "v"},
    )
    assert turn.system == ("first", "sys", "dev")
    assert turn.messages == (
        UserMessage((TextPart("a"),)),
        AssistantMessage("b"),
        UserMessage((TextPart("c"),)),
    )
    s = turn.sampling
    assert (s.temperature, s.top_p, s.max_output_tokens, s.reasoning_effort, s.user) == (
        0.3,
        0.5,
        99,
        "high",
        "u1",
    )
    assert options.store is True and not options.reasoning_summary
    assert options.echo["metadata"] == {"k": "v"} and options.echo["instructions"] == "first"
    assert [item["role"] for item in options.input_items] == [
        "system",
        "user",
        "assistant",
        "developer",
        "user",
    ]
    assert all(item["id"].startswith("msg_") for item in options.input_items)


def test_no_conversation_is_one_empty_user_message() -> None:
    for body in ({"input": None}, {"input": [{"type": "reasoning", "summary": []}]}):
        turn, _ = plan(**body)
        assert turn.messages == (UserMessage(()),)


def test_string_input_is_one_user_message() -> None:
    turn, options = plan(input="hello")
    assert turn.messages == (UserMessage((TextPart("hello"),)),)
    [item] = options.input_items
    assert item["content"] == [{"type": "input_text", "text": "hello"}]


def test_images_for_image_models_only_and_only_from_users() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
    turn, _ = plan(model="p/vision", input=[{"role": "user", "content": [image]}])
    assert turn.messages == (UserMessage((ImagePart(image["image_url"], "image/png"),)),)
    with pytest.raises(InvalidRequest) as info:
        plan(input=[{"role": "user", "content": [image]}])
    assert info.value.code == "model_not_multimodal" and info.value.param == "input[0].content[0]"
    with pytest.raises(InvalidRequest) as info:
        plan(model="p/vision", input=[{"role": "system", "content": [image]}])
    assert info.value.param == "input[0].content[0]"


def test_function_calls_need_their_outputs_in_order() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'}
    out = {"type": "function_call_output", "call_id": "c1", "output": "42"}
    turn, _ = plan(input=[{"role": "user", "content": "q"}, call, out])
    assert turn.messages[-1] == AssistantMessage("", (ToolCall("c1", "f", {"x": 1}, "42"),))
    with pytest.raises(InvalidRequest) as info:
        plan(input=[call, {"role": "user", "content": "next"}])
    assert info.value.param == "input[1]"
    with pytest.raises(InvalidRequest) as info:
        plan(input=[out])
    assert info.value.param == "input[0].call_id"
    with pytest.raises(InvalidRequest):
        plan(input=[call, out, out])


def test_assistant_text_and_its_calls_are_one_turn() -> None:
    turn, _ = plan(
        input=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Let me see."}]},
            {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "b", "name": "g"},
            {"type": "function_call_output", "call_id": "b", "output": "B"},
            {"type": "function_call_output", "call_id": "a", "output": [
                {"type": "input_text", "text": "A1"}, {"type": "input_text", "text": "A2"}]},
        ]
    )  # fmt: skip
    assert turn.messages[1] == AssistantMessage(
        "Let me see.", (ToolCall("a", "f", {}, "A1A2"), ToolCall("b", "g", {}, "B"))
    )


def test_tools_choices_and_namespaces() -> None:
    fn = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    ns = {"type": "namespace", "name": "n", "description": "N", "tools": [
        {"type": "function", "name": "g", "description": "G"}]}  # fmt: skip
    hosted = {"type": "web_search"}
    turn, options = plan(tools=[fn, ns, hosted])
    assert [(t.name, t.description) for t in turn.tools] == [("f", ""), ("n__g", "N\n\nG")]
    assert options.tools.client_name("n__g") == ("n", "g")
    assert turn.tools[1].parameters == {"type": "object", "properties": {}}
    assert plan(tools=[fn], tool_choice="none")[0].tools == ()
    assert plan(tools=[fn], tool_choice="required")[0].tool_choice == ForcedTool(None)
    named = plan(tools=[fn, ns], tool_choice={"type": "function", "name": "g", "namespace": "n"})
    assert named[0].tool_choice == ForcedTool("n__g")
    with pytest.raises(InvalidRequest) as info:
        plan(tools=[fn], tool_choice={"type": "function", "name": "nope"})
    assert info.value.param == "tool_choice.name"
    with pytest.raises(InvalidRequest) as info:
        plan(tools=[hosted], tool_choice="required")
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequest) as info:
        plan(tools=[fn, fn])
    assert info.value.param == "tools[1].name"


def test_text_formats_and_model() -> None:
    assert plan(text={"format": {"type": "json_object"}})[0].output == OutputFormat(
        {"type": "object"}
    )
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "name": "x", "schema": schema, "strict": True}
    turn, options = plan(text={"format": fmt})
    assert turn.output == OutputFormat(schema)
    assert options.echo["text"]["format"] == fmt
    assert plan(text={"format": {"type": "text"}})[0].output is None
    turn, options = plan(model="opencode/default")
    assert turn.model.id == "p/text" and options.model == "opencode/default"
    with pytest.raises(ModelNotFound):
        plan(model="p/none")


def test_history_comes_first_without_its_instructions() -> None:
    earlier = [
        {"type": "message", "id": "m1", "role": "user", "content": [
            {"type": "input_text", "text": "one"}], "status": "completed"},
        {"type": "message", "id": "m2", "role": "assistant", "content": [
            {"type": "output_text", "text": "two", "annotations": [], "logprobs": []}],
         "status": "completed"},
    ]  # fmt: skip
    turn, options = plan_from_request(
        {"model": "p/text", "input": "three", "instructions": "new"}, CATALOG, history=earlier
    )
    assert turn.system == ("new",)
    assert turn.messages == (
        UserMessage((TextPart("one"),)),
        AssistantMessage("two"),
        UserMessage((TextPart("three"),)),
    )
    assert len(options.input_items) == 1 and options.history == tuple(earlier)


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("background", True, "background"),
        ("top_logprobs", 2, "top_logprobs"),
        ("conversation", "conv_1", "conversation"),
        ("prompt", {"id": "p"}, "prompt"),
        ("include", ["message.output_text.logprobs"], "include[0]"),
        ("tools", [{"type": "frobnicate"}], "tools[0].type"),
        ("input", [{"type": "item_reference", "id": "x"}], "input[0].type"),
        ("tool_choice", {"type": "allowed_tools", "name": "x"}, "tool_choice.type"),
        ("text", {"format": {"type": "grammar"}}, "text.format.type"),
    ],
)
def test_refused_fields_name_themselves(field: str, value: Any, param: str) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        check_body(REQUEST, {"model": "p/text", field: value})
    assert info.value.param == param


def test_a_typeless_message_is_a_message_also_when_wrong() -> None:
    check_body(REQUEST, {"model": "m", "input": [{"role": "user", "content": "hi"}]})
    with pytest.raises(InvalidRequest) as info:
        check_body(REQUEST, {"model": "m", "input": [{"role": "robot", "content": "hi"}]})
    assert info.value.param == "input[0].role"


# -- responses and streams -------------------------------------------------------------------

TEXT = [TextDelta("Hel"), TextDelta("lo"), TurnFinished("stop", Usage(10, 5, 2, 0, 1))]


def test_text_stream_is_openais_sequence() -> None:
    events, _ = stream_of({"model": "p/text", "input": "hi"}, TEXT)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 1},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    assert (
        events[0]["response"]["output"] == [] and events[0]["response"]["status"] == "in_progress"
    )


def test_json_answer_is_the_streams_last_response() -> None:
    body = {"model": "p/text", "input": "hi", "reasoning": {"summary": "auto"}}
    turn = [
        ReasoningDelta("think"),
        TextDelta("Hi"),
        ToolCallDelta(0, id="call_1", name="f"),
        ToolCallDelta(0, arguments='{"a": 1}'),
        TurnFinished("tool_calls", Usage(3, 4)),
    ]
    body["tools"] = [{"type": "function", "name": "f"}]
    events, _ = stream_of(body, turn)
    assert same_but_ids(json_answer(body, turn), events[-1]["response"])


def test_reasoning_summary_and_a_namespaced_call() -> None:
    body = {
        "model": "p/text",
        "input": "hi",
        "reasoning": {"summary": "auto"},
        "tools": [{"type": "namespace", "name": "ns", "description": "d",
                   "tools": [{"type": "function", "name": "go"}]}],
    }  # fmt: skip
    turn = [
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        ToolCallDelta(0, id="call_9", name="ns__go"),
        ToolCallDelta(0, arguments='{"x": true}'),
        TurnFinished("tool_calls", Usage(1, 2, reasoning_tokens=1)),
    ]
    events, _ = stream_of(body, turn)
    kinds = [e["type"] for e in events]
    assert "response.reasoning_summary_text.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["name"] == "go"
    reasoning, call = events[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Let me think."}]
    assert (call["name"], call["namespace"], call["call_id"]) == ("go", "ns", "call_9")
    assert json.loads(call["arguments"]) == {"x": True}


def test_reasoning_without_a_summary_request_is_left_out() -> None:
    events, _ = stream_of(
        {"model": "p/text", "input": "hi"},
        [ReasoningDelta("hidden"), TextDelta("shown"), TurnFinished("stop", Usage())],
    )
    assert "hidden" not in json.dumps(events)
    assert [i["type"] for i in events[-1]["response"]["output"]] == ["message"]


def test_output_limit_makes_an_incomplete_response() -> None:
    body = {"model": "p/text", "input": "hi", "max_output_tokens": 16}
    events, _ = stream_of(body, [TextDelta("cut"), TurnFinished("length", Usage())])
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["max_output_tokens"] == 16


def test_a_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    _, options = plan_from_request({"model": "p/text", "input": "hi"}, CATALOG)
    builder = ResponseBuilder(new_meta(), options)
    events = builder.started() + builder.feed(TextDelta("par"))
    events += builder.failed(BackendTimeout("too slow"))
    check = ResponsesStreamCheck(default_contracts())
    assert [p for e in events for p in check.feed(frame(e))] + check.end() == []
    error, failed = events[-2:]
    assert error["type"] == "error" and error["code"] == "timeout"
    assert error["error"] == {
        "type": "timeout",
        "code": "timeout",
        "message": "too slow",
        "param": None,
    }
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "too slow"}


def test_the_text_delta_fast_path_writes_what_the_general_path_writes() -> None:
    events, _ = stream_of({"model": "p/text", "input": "hi"}, [
        TextDelta('quote " back\\ \u00e9 \n'), TurnFinished("stop", Usage())])  # fmt: skip
    [delta] = [e for e in events if e["type"] == "response.output_text.delta"]
    general = json.dumps(delta, separators=(",", ":"), ensure_ascii=False)
    assert frame(delta) == f"event: {delta['type']}\ndata: {general}\n\n".encode()


def test_frames_are_one_event_each_with_lf_line_endings() -> None:
    data = frame({"type": "response.output_text.delta", "delta": "a\r\nb", "sequence_number": 3})
    assert data.startswith(b"event: response.output_text.delta\ndata: {")
    assert data.endswith(b"\n\n") and data.count(b"\n") == 3 and b"\r" not in data


def test_input_items_page_and_conversation() -> None:
    _, options = plan(input=[{"role": "user", "content": str(i)} for i in range(5)])
    items = list(options.input_items)
    assert [i["content"][0]["text"] for i in input_item_page(items, after=None)["data"]] == [
        "4", "3", "2", "1", "0"]  # fmt: skip
    page = input_item_page(items, limit=2, order="asc", after=items[0]["id"])
    assert [i["content"][0]["text"] for i in page["data"]] == ["1", "2"] and page["has_more"]
    assert page["first_id"] == items[1]["id"] and page["last_id"] == items[2]["id"]
    assert our_spec().validate("ResponseItemList", page) == []
    assert openai_schemas().validate("ResponseItemList", page) == []
    empty = input_item_page(items, after="nope")
    assert empty["data"] == [] and not empty["has_more"]
    response = json_answer({"model": "p/text", "input": "x"}, TEXT)
    assert conversation_of([], items, response)[-1] == response["output"][0]
