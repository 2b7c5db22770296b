"""LangChain's `ChatOpenAI` (`langchain-openai`), unmodified, against the gateway."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.clients._support import MODEL, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode


class City(BaseModel):
    name: str
    population: int


@pytest.fixture
def llm(proxy: RecordingProxy) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=proxy.base_url, api_key=API_KEY, model=MODEL, max_retries=0, timeout=30
    )


def test_invoke(llm: ChatOpenAI, fake_upstream: fu.FakeUpstream, marker: str) -> None:
    fake_upstream.script(marker, fu.text("LangChain reply", usage=fu.Usage(14, 2)))
    message = llm.invoke([SystemMessage("Be brief."), HumanMessage(f"hi {marker}")])
    assert message.content == "LangChain reply"
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.response_metadata["model_name"] == MODEL
    assert message.usage_metadata is not None
    assert (message.usage_metadata["input_tokens"], message.usage_metadata["output_tokens"]) == (
        14,
        2,
    )
    [upstream] = fake_upstream.chat_requests(marker)
    assert upstream.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"hi {marker}"},
    ]


def test_stream_with_usage(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["Lang", "Chain ", "streams"], usage=fu.Usage(5, 3)))
    llm = ChatOpenAI(
        base_url=proxy.base_url, api_key=API_KEY, model=MODEL, max_retries=0, stream_usage=True
    )
    chunks = list(llm.stream(marker))
    assert [c.content for c in chunks if c.content] == ["Lang", "Chain ", "streams"]
    usage = [c.usage_metadata for c in chunks if c.usage_metadata]
    assert usage and usage[-1]["output_tokens"] == 3
    [sent] = proxy.chat_requests(marker)
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_with_structured_output(
    llm: ChatOpenAI, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str, method: str
) -> None:
    answer = {"name": "Brest", "population": 139000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer))))
    structured = llm.with_structured_output(City, method=method)  # type: ignore[arg-type]
    # json_mode: OpenAI wants the word "JSON" in the messages.
    assert structured.invoke(f"Give a city as JSON {marker}") == City(**answer)
    [sent] = proxy.chat_requests(marker)
    expected = "json_schema" if method == "json_schema" else "json_object"
    assert sent.body["response_format"]["type"] == expected


def test_with_structured_output_default_method_is_json_schema(
    llm: ChatOpenAI, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    answer = {"name": "Pau", "population": 77000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer))))
    assert llm.with_structured_output(City).invoke(marker) == City(**answer)
    [sent] = proxy.chat_requests(marker)
    assert sent.body["response_format"]["type"] == "json_schema"


def test_with_structured_output_function_calling(
    llm: ChatOpenAI, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    """method="function_calling" forces its tool with a named tool_choice: the upstream is
    told to call it (tool_choice required, that tool alone) and LangChain parses the call."""
    answer = {"name": "Lyon", "population": 520000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("City", json.dumps(answer))))
    assert llm.with_structured_output(City, method="function_calling").invoke(marker) == City(
        **answer
    )
    [sent] = proxy.chat_requests(marker)
    assert sent.body["tool_choice"] == {"type": "function", "function": {"name": "City"}}
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["tool_choice"] == "required"
    assert [t["function"]["name"] for t in received.body["tools"]] == ["City"]
