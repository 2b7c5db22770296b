"""The official `@anthropic-ai/sdk` Node SDK, unmodified, against the gateway.

`js/anthropic_sdk.mjs` runs each case in one `node` process; each case puts `<marker>[<case>]`
in its messages. The recording proxy shows what the SDK put on the wire.
"""

from __future__ import annotations

import pytest

from tests.clients._support import RecordingProxy, run_node
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY

pytestmark = pytest.mark.opencode


def test_create_stream_tools_count_tokens_and_errors(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(f"{marker}[create]", fu.text("Node says hi", usage=fu.Usage(11, 3)))
    fake_upstream.script(f"{marker}[stream]", fu.text(["one ", "two ", "three"]))
    fake_upstream.script(
        f"{marker}[tools]",
        fu.tool_calls(fu.ToolCall("get_weather", '{"city": "Lima"}', id="call_n1")),
        fu.text("18 C in Lima."),
    )
    env = {"GATEWAY_URL": proxy.url, "GATEWAY_API_KEY": API_KEY, "MARKER": marker}
    got = run_node(
        "anthropic_sdk.mjs",
        env,
        "create",
        "stream",
        "tools",
        "count_tokens",
        "unknown_model",
        "models",
    )

    create = got["create"]
    assert create["content"] == [{"type": "text", "text": "Node says hi"}]
    assert create["stop_reason"] == "end_turn" and create["model"] == "fake/fake-model"
    assert create["usage"]["input_tokens"] == 11 and create["usage"]["output_tokens"] == 3
    [sent] = proxy.requests(f"{marker}[create]", path="/v1/messages")
    # This version of the SDK sends its apiKey as a Bearer token (Claude Code's
    # ANTHROPIC_API_KEY is the x-api-key style: test_claude_code.py).
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["anthropic-version"]  # 2026-10-21 here: every version is served alike

    assert got["stream"]["texts"] == ["one ", "two ", "three"]
    assert got["stream"]["content"] == [{"type": "text", "text": "one two three"}]

    tools = got["tools"]
    assert tools["stop_reason"] == "tool_use"
    assert tools["call"]["name"] == "get_weather" and tools["call"]["input"] == {"city": "Lima"}
    assert tools["call"]["id"] == "toolu_call_n1" and tools["answer"] == "18 C in Lima."

    assert got["count_tokens"]["input_tokens"] > 0
    unknown = got["unknown_model"]
    assert (unknown["class"], unknown["status"], unknown["type"]) == (
        "NotFoundError",
        404,
        "not_found_error",
    )
    assert unknown["requestID"]
    assert "fake/fake-model" in got["models"]["ids"]
