"""The Responses API end to end: openai SDK -> gateway -> real opencode serve -> fake upstream.

Every response and streamed event goes through the contract checks (the `client` and `http`
fixtures): our spec, OpenAI's schemas, the stream rules.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to, free_port
from tests.support.opencode_turns import OpenCodeTurns

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}


def upstream_messages(fake: fu.FakeUpstream, marker: str) -> list[dict[str, Any]]:
    [received] = fake.chat_requests(marker)
    messages: list[dict[str, Any]] = received.body["messages"]
    return messages


def test_non_stream_response_and_what_upstream_received(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("Hello there", usage=fu.Usage(21, 4, cached_tokens=3)))
    response = client.responses.create(
        model=MODEL,
        instructions="You are terse.",
        input=[
            {"role": "developer", "content": "Dev note."},
            {"role": "user", "content": f"hi {marker}"},
        ],
        temperature=0.4,
        max_output_tokens=64,
        metadata={"run": "1"},
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert abs(response.created_at - time.time()) < 60
    assert response.output_text == "Hello there"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (21, 4)
    assert response.usage.total_tokens == 25
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.metadata == {"run": "1"} and response.temperature == 0.4
    assert upstream_messages(fake_upstream, marker) == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Dev note."},
        {"role": "user", "content": f"hi {marker}"},
    ]
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["temperature"] == 0.4 and received.body["max_tokens"] == 64


def test_stream_is_openais_event_sequence_as_it_comes(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["a", "b", "c", "d"], chunk_delay_s=0.4))
    body = {"model": MODEL, "stream": True, "input": marker}
    arrivals: list[tuple[float, dict[str, Any]]] = []
    with http.stream("POST", "/v1/responses", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        arrivals.extend(
            (time.monotonic(), json.loads(line[6:]))
            for line in response.iter_lines()
            if line.startswith("data: ")
        )
    kinds = [event["type"] for _, event in arrivals]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [(t, e["delta"]) for t, e in arrivals if e["type"] == "response.output_text.delta"]
    assert "".join(d for _, d in deltas) == "abcd"
    # The upstream spaces its four deltas 0.4 s apart: relayed as they come, not at the end.
    assert deltas[-1][0] - deltas[0][0] > 0.8
    assert arrivals[-1][1]["response"]["output"][0]["content"][0]["text"] == "abcd"


def test_sdk_stream_helper_and_final_response(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["One", " two"], usage=fu.Usage(7, 3)))
    with client.responses.stream(model=MODEL, input=marker) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "One two" and final.output_text == "One two"
    assert final.usage is not None and final.usage.output_tokens == 3


def test_function_tool_round_trip(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Lima"}', id="call_w1")),
        fu.text("It is 18 C in Lima."),
    )
    first = client.responses.create(
        model=MODEL, input=marker, tools=[WEATHER, {"type": "web_search"}], store=False
    )  # type: ignore[list-item]
    [call] = first.output
    assert call.type == "function_call" and call.status == "completed"
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_w1",
        "get_weather",
        {"city": "Lima"},
    )
    opencode_turns.wait_over(marker)
    [received] = fake_upstream.chat_requests(marker)
    assert [t["function"]["name"] for t in received.body["tools"]] == ["get_weather"]
    second = client.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": marker},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": "call_w1", "output": "18 C"},
        ],
        tools=[WEATHER],
        store=False,
    )  # type: ignore[list-item]
    assert second.output_text == "It is 18 C in Lima."
    _, replay = fake_upstream.chat_requests(marker)
    sent = replay.body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_w1"
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "18 C"}


def test_namespace_functions_come_back_under_the_clients_names(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("agents__spawn", '{"task": "x"}')))
    namespace = {
        "type": "namespace",
        "name": "agents",
        "description": "Sub-agents.",
        "tools": [{"type": "function", "name": "spawn", "description": "Start one.",
                   "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}}],
    }  # fmt: skip
    body = {"model": MODEL, "input": marker, "tools": [namespace], "store": False}
    response = http.post("/v1/responses", json=body).json()
    [call] = response["output"]
    assert (call["namespace"], call["name"]) == ("agents", "spawn")
    [received] = fake_upstream.chat_requests(marker)
    [tool] = received.body["tools"]
    assert tool["function"]["name"] == "agents__spawn"
    assert tool["function"]["description"] == "Sub-agents.\n\nStart one."


def test_previous_response_id_continues_exactly_and_the_store_answers(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("first answer"), fu.text("second answer"))
    first = client.responses.create(
        model=MODEL, instructions="old rules", input=[{"role": "user", "content": marker}]
    )
    second = client.responses.create(
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
    stored = client.responses.retrieve(second.id)
    assert stored.id == second.id and stored.output_text == "second answer"
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "and then?"  # type: ignore[union-attr]
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, previous_response_id=second.id, input="more")
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"


def test_store_false_writes_nothing(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("not kept"))
    response = client.responses.create(model=MODEL, input=marker, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_streamed_responses_are_stored_too(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["kept ", "too"]))
    with client.responses.stream(model=MODEL, input=marker) as stream:
        final = stream.get_final_response()
    assert client.responses.retrieve(final.id).output_text == "kept too"


def test_unknown_ids_are_404_in_openais_shape(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/v1/responses/resp_nope"),
        ("GET", "/v1/responses/resp_nope/input_items"),
        ("DELETE", "/v1/responses/resp_nope"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 404, (method, path)
        error = response.json()["error"]
        assert error["code"] == "not_found" and error["param"] == "response_id"


def test_the_store_survives_a_restart(
    gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """A second gateway on the first one's state dir (after it stopped) finds its responses."""
    fake_upstream.script(marker, fu.text("remembered"))
    first = attached_to(gateway)
    body = {"model": MODEL, "input": marker}
    created = httpx.post(f"{first.base_url}/responses", headers=AUTH, json=body, timeout=30)
    assert created.status_code == 200, created.text
    first.stop()
    again = GatewayServer(replace(first.config, port=free_port())).start()
    try:
        found = httpx.get(
            f"{again.base_url}/responses/{created.json()['id']}", headers=AUTH, timeout=30
        )
    finally:
        again.stop()
    assert found.status_code == 200 and found.json() == created.json()


def test_output_limit_is_an_incomplete_response(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("cut sho", finish_reason="length"))
    response = client.responses.create(model=MODEL, input=marker, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_provider_error_before_the_stream_is_a_status(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.invalid_api_key())
    body = {"model": MODEL, "stream": True, "input": marker}
    response = http.post("/v1/responses", json=body)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_authentication_failed"


def test_timeout_while_streaming_is_an_error_event_then_failed(
    tight_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["partial", "never"], hang_after_chunks=2))
    body = {"model": MODEL, "stream": True, "input": marker}
    with httpx.stream(
        "POST", f"{tight_gateway.base_url}/responses", headers=AUTH, json=body, timeout=30
    ) as response:
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    error, failed = events[-2:]
    assert error["type"] == "error" and error["code"] == "timeout"
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert any(e.get("delta") == "partial" for e in events)


def test_client_disconnect_mid_stream_aborts_upstream(
    gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["first"] + ["more"] * 50, chunk_delay_s=0.2))
    body = {"model": MODEL, "stream": True, "input": marker}
    with httpx.stream(
        "POST", f"{gateway.base_url}/responses", headers=AUTH, json=body, timeout=30
    ) as response:
        for line in response.iter_lines():
            if "first" in line:
                break
        closed_at = time.monotonic()
    [received] = fake_upstream.wait_for(
        lambda: [r for r in fake_upstream.chat_requests(marker) if r.disconnected_at]
    )
    assert received.disconnected_at is not None and received.disconnected_at - closed_at < 1.0


def test_client_disconnect_mid_request_aborts_upstream(
    gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.hang())
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.base_url}/responses",
            headers=AUTH,
            json={"model": MODEL, "input": marker},
            timeout=1.5,
        )
    closed_at = time.monotonic()
    [received] = fake_upstream.wait_for(
        lambda: [r for r in fake_upstream.chat_requests(marker) if r.disconnected_at]
    )
    assert received.disconnected_at is not None and received.disconnected_at - closed_at < 1.0


def test_bad_input_is_a_400_naming_the_field(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses",
        json={"model": MODEL, "input": [{"type": "function_call_output", "call_id": "x",
                                         "output": "?"}]},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input[0].call_id"
    response = http.post("/v1/responses", json={"model": MODEL, "background": True})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported_parameter"
    assert http.post("/v1/responses", json={"model": "fake/none", "input": "x"}).status_code == 404


def test_metrics_label_the_responses_routes(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("counted"))
    created = http.post("/v1/responses", json={"model": MODEL, "input": marker}).json()
    http.get(f"/v1/responses/{created['id']}")
    http.get(f"/v1/responses/{created['id']}/input_items")
    text = http.get("/metrics").text
    for route in (
        "/v1/responses",
        "/v1/responses/{response_id}",
        "/v1/responses/{response_id}/input_items",
    ):
        assert f'opencode_openai_requests_total{{route="{route}",status="200"}}' in text


TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
}


@pytest.mark.parametrize(
    ("choice", "offered"),
    [
        ("required", ["get_weather", "get_time"]),
        ({"type": "function", "name": "get_time"}, ["get_time"]),
    ],
    ids=["required", "named"],
)
def test_forced_tool_choice_makes_the_model_call_a_tool(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str, choice: Any, offered: list[str]
) -> None:
    """The upstream gets tool_choice "required" and the client's tools (the named one alone,
    as backend support for issue 15 does it); the answer is that call."""
    fake_upstream.script(marker, fu.echo())
    body = {"model": MODEL, "input": marker, "tools": [WEATHER, TIME], "tool_choice": choice}
    response = http.post("/v1/responses", json=body).json()
    [received] = fake_upstream.chat_requests(marker)
    assert received.body.get("tool_choice") == "required"
    # (OpenCode sends tools in alphabetical order.)
    assert sorted(t["function"]["name"] for t in received.body["tools"]) == sorted(offered)
    [call] = response["output"]
    assert call["type"] == "function_call" and call["name"] in offered
    assert response["tool_choice"] == choice


def test_forced_namespace_function_comes_back_under_the_clients_names(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.echo())
    namespace = {"type": "namespace", "name": "ns", "description": "d",
                 "tools": [{"type": "function", "name": "go"}]}  # fmt: skip
    body = {
        "model": MODEL,
        "input": marker,
        "tools": [WEATHER, namespace],
        "tool_choice": {"type": "function", "name": "go", "namespace": "ns"},
    }
    response = http.post("/v1/responses", json=body).json()
    [received] = fake_upstream.chat_requests(marker)
    assert received.body.get("tool_choice") == "required"
    assert [t["function"]["name"] for t in received.body["tools"]] == ["ns__go"]
    [call] = response["output"]
    assert (call["namespace"], call["name"]) == ("ns", "go")


def test_a_wrong_method_names_every_method_of_the_path(http: httpx.Client) -> None:
    response = http.request("PUT", "/v1/responses/resp_x")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "DELETE"}
