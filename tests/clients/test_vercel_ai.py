"""The Vercel AI SDK (`ai` with `@ai-sdk/openai-compatible`), unmodified, against the gateway.

`js/vercel_ai.mjs` runs generateText, streamText and generateObject (zod schema) in one `node`
process; each case puts `<marker>[<case>]` in its prompt.
"""

from __future__ import annotations

import json

import pytest

from tests.clients._support import RecordingProxy, run_node
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode


def test_generate_stream_and_object(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        f"{marker}[generate_text]", fu.text("Vercel says hi", usage=fu.Usage(11, 3))
    )
    fake_upstream.script(
        f"{marker}[stream_text]", fu.text(["one ", "two ", "three"], usage=fu.Usage(4, 3))
    )
    city = {"name": "Lille", "population": 236000}
    fake_upstream.script(
        f"{marker}[generate_object]",
        fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(city))),
    )
    other = {"name": "Metz", "population": 120000}
    fake_upstream.script(
        f"{marker}[generate_object_json_mode]",
        fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(other))),
    )
    env = {"GATEWAY_BASE_URL": proxy.base_url, "GATEWAY_API_KEY": API_KEY, "MARKER": marker}
    got = run_node(
        "vercel_ai.mjs",
        env,
        "generate_text",
        "stream_text",
        "generate_object",
        "generate_object_json_mode",
    )

    assert got["generate_text"]["text"] == "Vercel says hi"
    assert got["generate_text"]["finishReason"] == "stop"
    assert got["generate_text"]["usage"]["inputTokens"] == 11
    assert got["generate_text"]["usage"]["outputTokens"] == 3
    [upstream] = fake_upstream.chat_requests(f"{marker}[generate_text]")
    assert upstream.body["messages"][0] == {"role": "system", "content": "Be brief."}

    assert got["stream_text"]["parts"] == ["one ", "two ", "three"]
    assert got["stream_text"]["finishReason"] == "stop"
    assert got["stream_text"]["usage"]["outputTokens"] == 3
    [sent] = proxy.chat_requests(f"{marker}[stream_text]")
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}

    assert got["generate_object"]["object"] == city
    [sent] = proxy.chat_requests(f"{marker}[generate_object]")
    assert sent.body["response_format"]["type"] == "json_schema"
    assert sent.body["response_format"]["json_schema"]["name"] == "city"
    [upstream] = fake_upstream.chat_requests(f"{marker}[generate_object]")
    [tool] = upstream.body["tools"]
    assert tool["function"]["name"] == "StructuredOutput"
    assert set(tool["function"]["parameters"]["properties"]) == {"name", "population"}

    assert got["generate_object_json_mode"]["object"] == other
    [sent] = proxy.chat_requests(f"{marker}[generate_object_json_mode]")
    assert sent.body["response_format"] == {"type": "json_object"}
