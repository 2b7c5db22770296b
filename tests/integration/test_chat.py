"""Chat completions end to end: openai SDK -> gateway -> real opencode serve -> fake upstream."""

from __future__ import annotations

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


def test_non_stream_reply_and_what_upstream_received(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker, fu.text("Hello there", usage=fu.Usage(prompt_tokens=21, completion_tokens=4))
    )
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"hi {marker}"},
        ],
    )
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    assert isinstance(reply.created, int) and abs(reply.created - time.time()) < 60
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there"
    assert choice.finish_reason == "stop"
    assert choice.logprobs is None
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (21, 4)
    assert reply.usage.total_tokens == 25

    [received] = fake_upstream.chat_requests(marker)
    assert received.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"hi {marker}"},
    ]
    assert received.body["model"] == "fake-model"


def test_stream_arrives_in_order_with_role_first_finish_and_usage(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["One", " two", " three"], usage=fu.Usage(7, 3)))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": marker}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "One two three"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 3, "deltas must not be merged into one"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (7, 3)


def test_stream_without_include_usage_has_no_usage_chunk(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("abc"))
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": marker}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_stream_ends_with_done_and_is_not_buffered(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["a", "b", "c", "d"], chunk_delay_s=0.4))
    arrivals: list[tuple[float, str]] = []
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": marker}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        arrivals.extend(
            (time.monotonic(), line[6:])
            for line in response.iter_lines()
            if line.startswith("data: ")
        )
    assert arrivals[-1][1] == "[DONE]"
    content_times = [
        t
        for t, data in arrivals[:-1]
        if json.loads(data)["choices"] and json.loads(data)["choices"][0]["delta"].get("content")
    ]
    # The upstream spaces its four deltas 0.4 s apart: relayed as they come, not at the end.
    assert content_times[-1] - content_times[0] > 0.8


def test_multi_turn_history_reaches_upstream_as_sent(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("third answer"))
    messages = [
        {"role": "system", "content": "sys one"},
        {"role": "user", "content": f"first {marker}"},
        {"role": "assistant", "content": "first answer"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "second"}, {"type": "text", "text": " part"}],
        },
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "third"},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "third answer"
    [received] = fake_upstream.chat_requests(marker)
    sent = received.body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent[0]["content"] == "sys one"
    assert sent[1]["content"] == f"first {marker}"
    assert sent[2]["content"] == "first answer"
    assert json.dumps(sent[3]["content"]).count("second") == 1 and "part" in json.dumps(
        sent[3]["content"]
    )
    assert sent[5]["content"] == "third"


def test_no_agent_prompt_environment_or_title_call(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
) -> None:
    fake_upstream.script(marker, fu.text("ok"))
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}])
    # A hidden title or summary call would be made during the turn: wait for its end.
    opencode_turns.wait_over(marker)
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["messages"] == [{"role": "user", "content": marker}]
    assert "<env>" not in json.dumps(received.body)


def test_default_alias_uses_opencodes_default_model(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("via default"))
    reply = client.chat.completions.create(
        model="opencode/default", messages=[{"role": "user", "content": marker}]
    )
    assert reply.choices[0].message.content == "via default"
    assert reply.model == MODEL
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["model"] == "fake-model"


def test_sampling_settings_reach_upstream(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("ok"))
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": marker}],
        temperature=0.25,
        top_p=0.5,
        max_tokens=77,
        seed=1234,
        stop=["END"],
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )
    [received] = fake_upstream.chat_requests(marker)
    body = received.body
    assert body["temperature"] == 0.25
    assert body["top_p"] == 0.5
    assert body["max_tokens"] == 77
    assert body["seed"] == 1234
    assert body["stop"] == ["END"]
    assert body["presence_penalty"] == 0.5
    assert body["frequency_penalty"] == 0.25


def test_upstream_tool_call_runs_nothing_and_makes_one_call(
    client: openai.OpenAI,
    fake_upstream: fu.FakeUpstream,
    opencode_turns: OpenCodeTurns,
    marker: str,
    tmp_path: object,
) -> None:
    target = f"/tmp/opencode-openai-pwned-{time.time_ns()}"
    calls = [
        fu.ToolCall("bash", json.dumps({"command": f"touch {target}", "description": "x"})),
        fu.ToolCall("write", json.dumps({"filePath": target, "content": "pwned"})),
    ]
    fake_upstream.script(marker, fu.tool_calls(*calls))
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": marker}]
    )
    assert reply.choices[0].finish_reason == "stop"
    assert not reply.choices[0].message.tool_calls
    opencode_turns.wait_over(marker)  # an agent loop's next call would come before its end
    assert len(fake_upstream.chat_requests(marker)) == 1
    import os

    assert not os.path.exists(target)


def test_unknown_model_is_404_before_any_upstream_call(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(
            model="nope/none", messages=[{"role": "user", "content": marker}]
        )
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    assert info.value.body["param"] == "model"  # type: ignore[index]
    assert fake_upstream.chat_requests(marker) == []


def test_n_greater_than_one_is_rejected(client: openai.OpenAI, marker: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, n=2, messages=[{"role": "user", "content": marker}]
        )
    assert info.value.body["param"] == "n"  # type: ignore[index]


def test_upstream_auth_failure_is_502_with_providers_message(
    client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.invalid_api_key())
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": marker}])
    assert info.value.status_code == 502
    assert "Incorrect API key" in info.value.body["message"]  # type: ignore[index]
    assert time.monotonic() - started < 5


def test_stream_failing_before_its_first_token_gets_a_status(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.server_error())
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": marker}]}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 502
    assert "server had an error" in response.json()["error"]["message"]


def test_upstream_failure_mid_stream_is_error_event_then_done(
    http: httpx.Client, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(
        marker, fu.text(["partial ", "answer ", "never"], close_after_chunks=3, chunk_delay_s=0.3)
    )
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": marker}]}
    started = time.monotonic()
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert time.monotonic() - started < 5
    assert data[-1] == "[DONE]"
    error = json.loads(data[-2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert any("partial" in d for d in data)


def test_timeout_is_504_and_aborts_the_upstream_call(
    tight_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.hang())
    started = time.monotonic()
    response = httpx.post(
        f"{tight_gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": marker}]},
        timeout=30,
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout"
    assert 2.5 < time.monotonic() - started < 7
    [received] = fake_upstream.wait_for(
        lambda: [r for r in fake_upstream.chat_requests(marker) if r.disconnected_at]
    )
    assert received.disconnected_at is not None


def test_timeout_while_streaming_is_an_error_event(
    tight_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text(["partial", "never"], hang_after_chunks=2))
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": marker}]}
    with httpx.stream(
        "POST",
        f"{tight_gateway.base_url}/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json=body,
        timeout=30,
    ) as response:
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["error"]["type"] == "timeout"
    assert any("partial" in d for d in data)


def test_client_disconnect_mid_stream_aborts_upstream(
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
    assert received.disconnected_at is not None and received.disconnected_at - closed_at < 1.0


def test_client_disconnect_mid_request_aborts_upstream(
    gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.hang())
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": marker}]},
            timeout=1.5,
        )
    closed_at = time.monotonic()
    [received] = fake_upstream.wait_for(
        lambda: [r for r in fake_upstream.chat_requests(marker) if r.disconnected_at]
    )
    assert received.disconnected_at is not None and received.disconnected_at - closed_at < 1.0
