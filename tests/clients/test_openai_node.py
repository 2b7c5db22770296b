"""The official `openai` Node SDK (npm `openai`), unmodified, against the gateway.

`js/openai_sdk.mjs` runs the cases in one `node` process and prints what it got; each case puts
`<marker>[<case>]` in its messages so the fake upstream answers it with its own script.
"""

from __future__ import annotations

import json

import pytest

from tests.clients._support import RecordingProxy, occupied, run_node
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode


def env(base_url: str, marker: str) -> dict[str, str]:
    return {"GATEWAY_BASE_URL": base_url, "GATEWAY_API_KEY": API_KEY, "MARKER": marker}


def test_node_sdk_chat_models_and_errors(
    proxy: RecordingProxy, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(f"{marker}[non_stream]", fu.text("Hi from Node", usage=fu.Usage(9, 2)))
    fake_upstream.script(
        f"{marker}[stream]", fu.text(["Chunk", "ed ", "reply"], usage=fu.Usage(6, 3))
    )
    answer = {"name": "Nantes", "population": 320000}
    fake_upstream.script(
        f"{marker}[response_format]",
        fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer))),
    )
    cases = [
        "non_stream",
        "stream",
        "response_format",
        "models",
        "auth_error",
        "not_found_error",
        "bad_request_error",
    ]
    got = run_node("openai_sdk.mjs", env(proxy.base_url, marker), *cases)

    assert got["non_stream"]["content"] == "Hi from Node"
    assert got["non_stream"]["finish_reason"] == "stop"
    assert got["non_stream"]["model"] == "fake/fake-model"
    assert (
        got["non_stream"]["usage"]["prompt_tokens"] == 9
        and got["non_stream"]["usage"]["completion_tokens"] == 2
    )
    [upstream] = fake_upstream.chat_requests(f"{marker}[non_stream]")
    assert upstream.body["max_tokens"] == 50

    stream = got["stream"]
    assert stream["first_role"] == "assistant"
    assert stream["content"] == "Chunked reply"
    assert stream["content_chunks"] >= 3
    assert stream["finish_reasons"][-1] == "stop"
    assert stream["last"]["choices"] == [] and stream["last"]["usage"]["completion_tokens"] == 3

    assert got["response_format"]["parsed"] == answer

    assert "fake/fake-model" in got["models"]["ids"] and "opencode/default" in got["models"]["ids"]
    assert got["models"]["retrieved"] == {
        "id": "fake/fake-model",
        "object": "model",
        "owned_by": "fake",
    }
    assert proxy.requests(path="/v1/models/fake%2Ffake-model"), "the SDK escapes the `/` of the id"

    assert (
        got["auth_error"]["class"] == "AuthenticationError" and got["auth_error"]["status"] == 401
    )
    assert got["not_found_error"]["class"] == "NotFoundError"
    assert got["not_found_error"]["code"] == "model_not_found"
    assert got["bad_request_error"]["class"] == "BadRequestError"
    assert got["bad_request_error"]["param"] == "n"

    [sent] = proxy.chat_requests(f"{marker}[non_stream]")
    assert sent.headers["user-agent"].startswith("OpenAI/JS")
    assert sent.headers["x-stainless-lang"] == "js"


def test_node_sdk_rate_limit_error(
    busy_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    with occupied(busy_gateway, fake_upstream, marker):
        got = run_node("openai_sdk.mjs", env(busy_gateway.base_url, marker), "rate_limit_error")
    error = got["rate_limit_error"]
    assert error["class"] == "RateLimitError" and error["status"] == 429
    assert error["code"] == "rate_limit_exceeded"
    assert error["retryAfter"] == "1"
