"""Responses API clients, unmodified, against the gateway, as their users drive them.

The `openai` Python SDK (`responses.create`, `.stream`, `.parse` with a Pydantic model, a
function tool round trip, `previous_response_id`), the OpenAI Agents SDK with its Responses
model and a function tool, the `openai` Node SDK and the Vercel AI SDK's `@ai-sdk/openai`
responses model (`js/responses.mjs`). Each goes through the recording proxy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel

from contract.transport import ValidatingTransport
from tests.clients._support import RecordingProxy, run_node
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"


@pytest.fixture
def sdk(proxy: RecordingProxy) -> Iterator[openai.OpenAI]:
    """The openai SDK through the recording proxy, every answer checked by the contract."""
    transport = ValidatingTransport()
    with httpx.Client(transport=transport, timeout=30) as http_client:
        yield openai.OpenAI(
            base_url=proxy.base_url, api_key=API_KEY, max_retries=0, http_client=http_client
        )
    transport.assert_clean()


class City(BaseModel):
    name: str
    population: int


def test_python_sdk_parse_with_a_pydantic_model(
    sdk: openai.OpenAI, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    answer = {"name": "Nantes", "population": 320000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer))))
    parsed = sdk.responses.parse(model=MODEL, input=marker, text_format=City)
    assert parsed.output_parsed == City(**answer)
    [sent] = proxy.requests(marker, path="/v1/responses")
    assert sent.body["text"]["format"]["type"] == "json_schema"
    assert sent.headers["user-agent"].startswith("OpenAI/Python")


def test_python_sdk_tool_round_trip_and_previous_response_id(
    sdk: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Oslo"}', id="call_o")),
        fu.text("Cold in Oslo."),
        fu.text("Bring a coat."),
    )
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": False,
    }
    first = sdk.responses.create(model=MODEL, input=marker, tools=[tool])  # type: ignore[list-item]
    [call] = [item for item in first.output if item.type == "function_call"]
    second = sdk.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "-3 C"}],
        tools=[tool],  # type: ignore[list-item]
    )
    assert second.output_text == "Cold in Oslo."
    third = sdk.responses.create(model=MODEL, previous_response_id=second.id, input="Advice?")
    assert third.output_text == "Bring a coat."
    *_, last = fake_upstream.chat_requests(marker)
    assert [m["role"] for m in last.body["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert last.body["messages"][2]["content"] == "-3 C"


def test_agents_sdk_runs_a_function_tool(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.tool_calls(fu.ToolCall("add", '{"a": 2, "b": 3}')),
        fu.text("2 + 3 = 5"),
    )
    calls: list[tuple[int, int]] = []

    @function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    async def run() -> str:
        client = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=API_KEY, max_retries=0)
        async with client:
            agent = Agent(
                name="calculator",
                instructions="Use the add tool.",
                model=OpenAIResponsesModel(model=MODEL, openai_client=client),
                tools=[add],
            )
            result = await Runner.run(agent, f"What is 2 + 3? {marker}")
            return str(result.final_output)

    set_tracing_disabled(True)
    assert asyncio.run(run()) == "2 + 3 = 5"
    assert calls == [(2, 3)]
    sent = proxy.requests(marker, path="/v1/responses")
    assert len(sent) == 2 and sent[0].headers["user-agent"].startswith("Agents/Python")
    _, upstream = fake_upstream.chat_requests(marker)
    assert [m["role"] for m in upstream.body["messages"]][-2:] == ["assistant", "tool"]
    assert upstream.body["messages"][-1]["content"] == "5"


def env(base_url: str, marker: str) -> dict[str, str]:
    return {"GATEWAY_BASE_URL": base_url, "GATEWAY_API_KEY": API_KEY, "MARKER": marker}


def test_node_sdk_responses(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(f"{marker}[node_create]", fu.text("Hi from Node", usage=fu.Usage(9, 2)))
    fake_upstream.script(f"{marker}[node_stream]", fu.text(["Chunk", "ed ", "reply"]))
    fake_upstream.script(f"{marker}[node_continue]", fu.text("one"), fu.text("two"))
    got = run_node(
        "responses.mjs", env(proxy.base_url, marker), "node_create", "node_stream", "node_continue"
    )
    created = got["node_create"]
    assert created["status"] == "completed" and created["output_text"] == "Hi from Node"
    assert created["id"].startswith("resp_") and created["usage"]["input_tokens"] == 9
    stream = got["node_stream"]
    assert stream["types"][0] == "response.created" and stream["types"][-1] == "response.completed"
    assert stream["deltas"] == ["Chunk", "ed ", "reply"]
    assert stream["final_text"] == "Chunked reply"
    assert got["node_continue"] == {"first": "one", "second": "two", "retrieved": "two"}
    [sent] = proxy.requests(f"{marker}[node_create]", path="/v1/responses")
    assert sent.headers["x-stainless-lang"] == "js"


def test_vercel_ai_sdk_openai_responses_model(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(f"{marker}[vercel_generate]", fu.text("Hi from AI SDK"))
    fake_upstream.script(f"{marker}[vercel_stream]", fu.text(["Str", "eam", "ed"]))
    fake_upstream.script(
        f"{marker}[vercel_tool]",
        fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Rome"}')),
        fu.text("Rome is mild."),
    )
    got = run_node(
        "responses.mjs",
        env(proxy.base_url, marker),
        "vercel_generate",
        "vercel_stream",
        "vercel_tool",
    )
    assert got["vercel_generate"]["text"] == "Hi from AI SDK"
    assert got["vercel_generate"]["finishReason"] == "stop"
    assert got["vercel_stream"]["text"] == "Streamed" and len(got["vercel_stream"]["parts"]) >= 3
    tool = got["vercel_tool"]
    assert tool["text"] == "Rome is mild."
    assert tool["steps"][0]["toolCalls"] == [{"name": "get_weather", "input": {"city": "Rome"}}]
    assert proxy.requests(f"{marker}[vercel_generate]", path="/v1/responses")
    _, upstream = fake_upstream.chat_requests(f"{marker}[vercel_tool]")
    assert upstream.body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": upstream.body["messages"][-2]["tool_calls"][0]["id"],
        "content": "18 C in Rome",
    }
