"""Fidelity: the model sees what the client sent, the client gets everything back (issue 4)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import openai
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer
from tests.support.opencode_turns import OpenCodeTurns

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


def stream_text(chunks: list[openai.types.chat.ChatCompletionChunk], field: str) -> str:
    return "".join(getattr(c.choices[0].delta, field, None) or "" for c in chunks if c.choices)


def test_reasoning_is_kept_apart_from_content(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.text(
            "the answer",
            reasoning="step by step",
            usage=fu.Usage(100, 20, cached_tokens=30, reasoning_tokens=7),
        ),
    )
    reply = client.chat.completions.create(
        model="fake/fake-reasoning-model", messages=[{"role": "user", "content": marker}]
    )
    message = reply.choices[0].message
    assert message.content == "the answer"
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == "step by step" and extra["reasoning"] == "step by step"
    usage = reply.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 20, 120)
    assert (
        usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 30
    )
    assert (
        usage.completion_tokens_details is not None
        and usage.completion_tokens_details.reasoning_tokens == 7
    )


def test_reasoning_streams_as_its_own_deltas(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker,
        fu.text(
            "the answer",
            reasoning="step by step",
            usage=fu.Usage(100, 20, cached_tokens=30, reasoning_tokens=7),
        ),
    )
    chunks = list(
        client.chat.completions.create(
            model="fake/fake-reasoning-model",
            messages=[{"role": "user", "content": marker}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert stream_text(chunks, "content") == "the answer"
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        if c.choices
    )
    assert reasoning == "step by step"
    assert all(
        not (
            c.choices
            and c.choices[0].delta.content
            and (c.choices[0].delta.model_extra or {}).get("reasoning_content")
        )
        for c in chunks
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 7
    assert (
        usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 30
    )


@pytest.mark.parametrize(
    ("upstream", "expected"), [("length", "length"), ("content_filter", "content_filter")]
)
@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_is_mapped(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    upstream: str,
    expected: str,
    stream: bool,
) -> None:
    fake_upstream.script(marker, fu.text("partial", finish_reason=upstream))
    messages = [{"role": "user", "content": marker}]
    if stream:
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))  # type: ignore[arg-type]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == expected
        assert stream_text(chunks, "content") == "partial"
    else:
        reply = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
        assert reply.choices[0].finish_reason == expected
        assert reply.choices[0].message.content == "partial"


def test_user_and_reasoning_effort_reach_upstream(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("ok"))
    client.chat.completions.create(
        model="fake/fake-reasoning-model",
        messages=[{"role": "user", "content": marker}],
        user="user-1234",
        reasoning_effort="low",
        max_completion_tokens=99,
    )
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["user"] == "user-1234"
    assert received.body["reasoning_effort"] == "low"
    assert received.body["max_tokens"] == 99


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_response_format(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str, stream: bool
) -> None:
    answer = {"city": "Lyon", "population": 522000}
    fake_upstream.script(marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps(answer))))
    kwargs = {
        "model": MODEL,
        "messages": [{"role": "user", "content": marker}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
        },
    }
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))  # type: ignore[call-overload]
        content = stream_text(chunks, "content")
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    else:
        reply = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        content = reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "stop"
    assert json.loads(content) == answer
    [received] = fake_upstream.chat_requests(marker)
    [tool] = received.body["tools"]
    assert tool["function"]["parameters"]["properties"] == SCHEMA["properties"]


def test_json_object_response_format(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker, fu.tool_calls(fu.ToolCall("StructuredOutput", json.dumps({"ok": True})))
    )
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": marker}],
        response_format={"type": "json_object"},
    )
    assert json.loads(reply.choices[0].message.content or "") == {"ok": True}
    assert len(fake_upstream.chat_requests(marker)) == 1


def test_image_reaches_a_vision_model(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("a picture"))
    reply = client.chat.completions.create(
        model="fake/fake-vision-model",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": marker},
                    {"type": "image_url", "image_url": {"url": PNG}},
                ],
            }
        ],
    )
    assert reply.choices[0].message.content == "a picture"
    [received] = fake_upstream.chat_requests(marker)
    content = received.body["messages"][-1]["content"]
    assert {"type": "text", "text": marker} in content
    images = [p for p in content if p["type"] == "image_url"]
    assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1]) == base64.b64decode(
        PNG.split(",", 1)[1]
    )


def test_image_to_a_text_model_is_400(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": marker},
                        {"type": "image_url", "image_url": {"url": PNG}},
                    ],
                }
            ],
        )
    assert "image" in info.value.body["message"]  # type: ignore[index]
    assert info.value.body["param"] == "messages[0].content[1]"  # type: ignore[index]
    assert fake_upstream.chat_requests(marker) == []


@pytest.mark.parametrize(
    ("reply", "status", "fragment"),
    [
        (fu.rate_limited(retry_after=1), 502, "Rate limit reached"),
        (fu.server_error(), 502, "server had an error"),
        (fu.invalid_api_key(), 502, "Incorrect API key"),
        (
            fu.error(404, "The model `fake-model` does not exist", code="model_not_found"),
            502,
            "does not exist",
        ),
    ],
    ids=["429", "500", "401", "404"],
)
def test_upstream_errors_fail_fast_with_the_providers_message(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
    reply: fu.Reply,
    status: int,
    fragment: str,
) -> None:
    fake_upstream.script(marker, reply)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}])
    elapsed = time.monotonic() - started
    assert info.value.status_code == status
    assert fragment in info.value.body["message"]  # type: ignore[index]
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    opencode_turns.wait_over(marker)  # a retry would come before the turn is over
    assert len(fake_upstream.chat_requests(marker)) == 1, "no hidden retry"


def test_unreachable_upstream_fails_fast(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="dead/dead-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 502
    assert time.monotonic() - started < 2.0


def test_sessions_return_to_the_pool_bound(
    gateway: GatewayServer, client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake_upstream.script(marker, fu.text("ok"))

    def one(i: int) -> str | None:
        return (
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"{marker} {i}"}]
            )
            .choices[0]
            .message.content
        )

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(40))) == ["ok"] * 40
    backend = gateway.backend
    assert (
        backend is not None
        and backend.workers[0].process is not None
        and backend.workers[0].main is not None
    )
    process, main = backend.workers[0].process, backend.workers[0].main

    def sessions() -> list[dict[str, object]]:
        found: list[dict[str, object]] = httpx.get(
            f"{process.url}/session",
            params={"directory": str(main.directory)},
            auth=("opencode", process.password),
        ).json()
        return found

    # The pool deletes the sessions it does not keep in the background: wait for that.
    fake_upstream.wait_for(lambda: len(sessions()) <= main.sessions.max_idle, timeout=10)
    assert len(sessions()) <= main.sessions.max_idle
    health = httpx.get(f"{gateway.url}/health").json()
    assert health["backend"]["sessions"]["in_use"] == 0


def test_same_conversation_reaches_upstream_identically_on_reused_sessions(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("answer one"))
    first = [{"role": "system", "content": "sys"}, {"role": "user", "content": f"q1 {marker}"}]
    client.chat.completions.create(model=MODEL, messages=first)  # type: ignore[arg-type]
    second = [
        *first,
        {"role": "assistant", "content": "answer one"},
        {"role": "user", "content": "q2"},
    ]
    client.chat.completions.create(model=MODEL, messages=second)  # type: ignore[arg-type]
    client.chat.completions.create(model=MODEL, messages=second)  # type: ignore[arg-type]
    one, two, three = fake_upstream.chat_requests(marker)
    assert one.body["messages"] == first
    assert two.body["messages"] == second == three.body["messages"]


def test_disconnect_closes_upstream_quickly(
    gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["first"] + ["more"] * 50, chunk_delay_s=0.2))
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": marker}]}
    with httpx.stream(
        "POST",
        f"{gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json=body,
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if "first" in line:
                break
        closed_at = time.monotonic()
    [received] = fake_upstream.wait_for(
        lambda: [r for r in fake_upstream.chat_requests(marker) if r.disconnected_at]
    )
    assert received.disconnected_at is not None
    lag = received.disconnected_at - closed_at
    print(f"upstream closed {lag * 1000:.0f} ms after the client")
    assert lag < 0.1
