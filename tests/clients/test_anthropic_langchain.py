"""LangChain's `ChatAnthropic` (`langchain-anthropic`), unmodified, against the gateway."""

from __future__ import annotations

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, SystemMessage

from tests.clients._support import MODEL, RecordingProxy
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode


@pytest.fixture
def llm(proxy: RecordingProxy) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        base_url=proxy.url, api_key=API_KEY, model=MODEL, max_retries=0, timeout=30, max_tokens=1000
    )


def test_invoke_stream_and_tools(
    llm: ChatAnthropic, proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        f"{marker}[invoke]", fu.text("LangChain via Messages", usage=fu.Usage(14, 2))
    )
    message = llm.invoke([SystemMessage("Be brief."), HumanMessage(f"hi {marker}[invoke]")])
    assert message.content == "LangChain via Messages"
    assert message.response_metadata["stop_reason"] == "end_turn"
    assert message.usage_metadata is not None
    assert (message.usage_metadata["input_tokens"], message.usage_metadata["output_tokens"]) == (
        14,
        2,
    )
    [upstream] = fake_upstream.chat_requests(f"{marker}[invoke]")
    assert upstream.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"hi {marker}[invoke]"},
    ]

    fake_upstream.script(f"{marker}[stream]", fu.text(["a", "b", "c"]))
    pieces = [chunk.content for chunk in llm.stream(f"go {marker}[stream]")]
    text = "".join(
        p if isinstance(p, str) else "".join(b.get("text", "") for b in p) for p in pieces
    )
    assert text == "abc"

    fake_upstream.script(
        f"{marker}[tools]", fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Lima"}'))
    )

    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return "18 C"

    reply = llm.bind_tools([get_weather]).invoke(f"Weather in Lima? {marker}[tools]")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("get_weather", {"city": "Lima"})]
    [sent] = proxy.requests(f"{marker}[tools]", path="/v1/messages")
    assert sent.body["tools"][0]["name"] == "get_weather"
