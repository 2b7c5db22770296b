"""The Vercel AI SDK with its Anthropic provider (`@ai-sdk/anthropic`), unmodified, against the
gateway's Messages API: generateText, streamText and a tool call, in one `node` process."""

from __future__ import annotations

import pytest

from tests.clients._support import RecordingProxy, run_node
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode


def test_generate_stream_and_tool_call(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        f"{marker}[generate_text]", fu.text("Vercel via Messages", usage=fu.Usage(12, 4))
    )
    fake_upstream.script(f"{marker}[stream_text]", fu.text(["one ", "two ", "three"]))
    fake_upstream.script(
        f"{marker}[tool_call]", fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Lima"}'))
    )
    env = {"GATEWAY_BASE_URL": proxy.base_url, "GATEWAY_API_KEY": API_KEY, "MARKER": marker}
    got = run_node("vercel_anthropic.mjs", env, "generate_text", "stream_text", "tool_call")

    assert got["generate_text"]["text"] == "Vercel via Messages"
    assert got["generate_text"]["finishReason"] == "stop"
    assert got["generate_text"]["usage"]["inputTokens"] == 12
    assert got["generate_text"]["usage"]["outputTokens"] == 4
    [sent] = proxy.requests(f"{marker}[generate_text]", path="/v1/messages")
    assert sent.headers["x-api-key"] == API_KEY
    [upstream] = fake_upstream.chat_requests(f"{marker}[generate_text]")
    assert upstream.body["messages"][0] == {"role": "system", "content": "Be brief."}

    assert got["stream_text"]["parts"] == ["one ", "two ", "three"]
    assert got["stream_text"]["finishReason"] == "stop"

    assert got["tool_call"]["finishReason"] == "tool-calls"
    assert got["tool_call"]["toolCalls"] == [{"name": "get_weather", "input": {"city": "Lima"}}]
