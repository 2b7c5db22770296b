"""The fake upstream behaves like an OpenAI provider, over real HTTP.

The integration tests trust the fake to speak OpenAI's wire format, to misbehave
exactly as scripted and to notice aborts at once; these tests hold it to that, with
``httpx`` for the raw bytes and the ``openai`` SDK as a real client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_upstream import (
    MODEL_IDS,
    FakeUpstream,
    ToolCall,
    Usage,
    echo,
    error,
    garbage,
    hang,
    in_arrival_order,
    invalid_api_key,
    rate_limited,
    server_error,
    text,
    tool_calls,
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeUpstream) -> None:
    fake.reset()


@pytest.fixture
def sdk(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def http(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, timeout=5) as client:
        yield client


def chat(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": prompt}], **extra}


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of an SSE stream, as they arrive."""
    return (line.removeprefix("data: ") for line in lines if line.startswith("data: "))


def test_base_url_and_models(fake: FakeUpstream, http: httpx.Client) -> None:
    assert fake.base_url == f"http://127.0.0.1:{fake.port}/v1"
    response = http.get("/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == list(MODEL_IDS)
    [record] = fake.requests
    assert (record.method, record.path, record.body) == ("GET", "/v1/models", None)


def test_echo_repeats_the_last_user_message(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    fake.script("", echo())
    messages: Any = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "x"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "part"}],
        },
    ]
    completion = sdk.chat.completions.create(model="any-model", messages=messages)
    assert completion.object == "chat.completion"
    assert completion.model == "any-model"
    assert completion.choices[0].message.content == "echo: second part"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 15
    [record] = fake.chat_requests()
    assert record.body["messages"] == messages
    assert record.headers["authorization"] == "Bearer x"


def test_stream_through_the_sdk(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    fake.script("hello", echo())
    stream = sdk.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 3 and "".join(pieces) == "echo: hello there"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 10


def test_stream_is_proper_sse(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("raw", echo())
    response = http.post("/chat/completions", json=chat("raw", stream=True, model="m1"))
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-1] == "" and all(b.startswith("data: ") for b in blocks[:-1])
    assert blocks[-2] == "data: [DONE]"
    chunks = [json.loads(b.removeprefix("data: ")) for b in blocks[:-2]]
    assert len({c["id"] for c in chunks}) == 1
    for c in chunks:
        assert (c["object"], c["model"], c["choices"][0]["index"], c["choices"][0]["logprobs"]) == (
            "chat.completion.chunk",
            "m1",
            0,
            None,
        )
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert all("usage" not in c for c in chunks), "usage only when stream_options asks for it"
    [record] = fake.chat_requests("raw")
    # The fake counts a chunk once it is sent: the client may read the last one first.
    FakeUpstream.wait_for(lambda: record.ended_at is not None)
    assert record.chunks_sent == len(blocks) - 1


def conversation(marker: str, assistant_turns: int) -> list[dict[str, Any]]:
    """A conversation holding ``assistant_turns`` tool round trips after the question."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"question {marker}"}]
    for n in range(assistant_turns):
        call = {"id": f"c{n}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": f"result {n}"})
    return messages


def test_replies_follow_the_step_of_the_conversation(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    def answer(messages: list[dict[str, Any]]) -> httpx.Response:
        return http.post("/chat/completions", json={"model": "m", "messages": messages})

    def content(messages: list[dict[str, Any]]) -> str:
        return str(answer(messages).json()["choices"][0]["message"]["content"])

    fake.script("[m1]", text("zero"), text("one"), text("two"))
    # Any order, any repetition: the reply depends on the conversation, not on arrivals.
    assert [content(conversation("[m1]", n)) for n in (2, 0, 1, 0, 2)] == [
        "two",
        "zero",
        "one",
        "zero",
        "two",
    ]
    assert [r.step for r in fake.chat_requests("[m1]")] == [2, 0, 1, 0, 2]
    assert fake.unscripted == []
    past = answer(conversation("[m1]", 3))
    assert past.status_code == 400 and past.json()["error"]["code"] == "unscripted_request"
    assert "steps 0 to 2" in past.json()["error"]["message"]
    assert fake.unscripted == fake.chat_requests("[m1]")[-1:]


def test_one_step_answers_every_step_and_the_newest_rule_wins(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    def content(messages: list[dict[str, Any]]) -> str:
        response = http.post("/chat/completions", json={"model": "m", "messages": messages})
        return str(response.json()["choices"][0]["message"]["content"])

    fake.script("[m1]", text("always"))
    assert [content(conversation("[m1]", n)) for n in (0, 1, 5)] == ["always"] * 3
    newer = fake.script("[m1]", text("newer"))
    assert content(conversation("a [m1] b", 0)) == "newer"
    fake.remove(newer)
    assert content(conversation("[m1]", 0)) == "always"
    assert len(fake.chat_requests("[m1]")) == 5 and fake.unscripted == []
    fake.reset()
    assert fake.requests == []
    assert http.post("/chat/completions", json=chat("[m1]")).status_code == 400
    assert len(fake.unscripted) == 1


def test_unscripted_requests_fail_loudly_and_are_recorded(
    fake: FakeUpstream, sdk: openai.OpenAI, http: httpx.Client
) -> None:
    fake.script("[known]", text("scripted"))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "nobody scripted this"}]
        )
    assert caught.value.code == "unscripted_request"
    assert "nobody scripted this" in caught.value.message
    before = fake.next_seq
    with pytest.raises(openai.BadRequestError):
        list(
            sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "nor this"}], stream=True
            )
        )
    assert http.get("/embeddings").status_code == 404
    assert http.get("/models").status_code == 200
    answered = http.post("/chat/completions", json=chat("[known]"))
    assert answered.json()["choices"][0]["message"]["content"] == "scripted"
    assert [(r.path, r.seq >= before) for r in fake.unscripted] == [
        ("/v1/chat/completions", False),
        ("/v1/chat/completions", True),
        ("/v1/embeddings", True),
    ]
    assert [r.seq for r in fake.requests] == list(range(before - 1, before + 4))


def test_in_arrival_order_is_the_named_way_to_answer_a_repeat(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    fake.script("[retry]", in_arrival_order(rate_limited(), text("second try")))
    first = http.post("/chat/completions", json=chat("[retry]"))
    second = http.post("/chat/completions", json=chat("[retry]"))
    third = http.post("/chat/completions", json=chat("[retry]"))
    assert first.status_code == 429
    assert second.json()["choices"][0]["message"]["content"] == "second try"
    assert third.status_code == 400 and "used up" in third.json()["error"]["message"]
    assert fake.unscripted == fake.chat_requests("[retry]")[2:]


def test_concurrent_steps_of_one_conversation_get_their_own_replies(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    """What answering in arrival order got wrong: simultaneous requests of one script."""
    fake.script("[loop]", *(text(f"step {n}", delay_s=0.05 * (8 - n)) for n in range(8)))

    def ask(n: int) -> str:
        body = {"model": "m", "messages": conversation("[loop]", n)}
        return str(
            http.post("/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(ask, reversed(range(8)))) == [f"step {n}" for n in reversed(range(8))]


def test_reasoning_streams_before_the_content(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=40, cached_tokens=60, reasoning_tokens=30)
    fake.script("[think]", text(["The ", "answer"], reasoning="Let me think hard.", usage=usage))
    stream = sdk.chat.completions.create(
        model="fake-reasoning-model",
        messages=[{"role": "user", "content": "[think]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    kinds: list[tuple[str, str]] = []
    final = None
    for chunk in stream:
        if not chunk.choices:
            final = chunk.usage
            continue
        delta = chunk.choices[0].delta
        reasoning = (delta.model_extra or {}).get("reasoning_content")
        kinds += [("reasoning", reasoning)] if reasoning else []
        kinds += [("content", delta.content)] if delta.content else []
    assert [k for k, _ in kinds] == ["reasoning"] * 3 + ["content"] * 2
    assert "".join(t for k, t in kinds if k == "reasoning") == "Let me think hard."
    assert final is not None and final.prompt_tokens_details is not None
    assert final.prompt_tokens_details.cached_tokens == 60
    assert final.completion_tokens_details is not None
    assert final.completion_tokens_details.reasoning_tokens == 30

    message = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[think]"}]
    )
    assert message.choices[0].message.model_extra == {"reasoning_content": "Let me think hard."}
    assert message.choices[0].message.content == "The answer"


def test_streamed_tool_call_fragments_reassemble(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    read = ToolCall("read", json.dumps({"path": "/etc/hosts", "limit": 10}), id="call_read")
    fake.script("[tools]", tool_calls(read, ToolCall("bash", json.dumps({"command": "ls -la"}))))
    stream = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[tools]"}], stream=True
    )
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            assert delta.function is not None
            call = calls.setdefault(delta.index, {"fragments": []})
            if delta.id:
                assert "id" not in call, "id and name come once, in the first delta"
                call.update(id=delta.id, name=delta.function.name, type=delta.type)
            call["fragments"].append(delta.function.arguments)
    assert finish == "tool_calls"
    assert calls[0]["id"] == "call_read" and calls[1]["id"].startswith("call_")
    assert [c["name"] for c in calls.values()] == ["read", "bash"]
    assert all(c["type"] == "function" for c in calls.values())
    assert len(calls[0]["fragments"]) > 2
    assert json.loads("".join(calls[0]["fragments"])) == {"path": "/etc/hosts", "limit": 10}
    assert json.loads("".join(calls[1]["fragments"])) == {"command": "ls -la"}


def test_tool_calls_without_streaming(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    fake.script("[tools]", tool_calls(ToolCall("read", '{"path": "a"}', id="c1")))
    choice = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[tools]"}]
    ).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id == "c1" and call.type == "function"
    assert (call.function.name, call.function.arguments) == ("read", '{"path": "a"}')


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_finish_reason(fake: FakeUpstream, sdk: openai.OpenAI, reason: str) -> None:
    fake.script("[cut]", text("partial", finish_reason=reason))
    completion = sdk.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "[cut]"}]
    )
    assert completion.choices[0].finish_reason == reason


@pytest.mark.parametrize(
    ("reply", "exception", "status", "code"),
    [
        (invalid_api_key(), openai.AuthenticationError, 401, "invalid_api_key"),
        (rate_limited(retry_after=7), openai.RateLimitError, 429, "rate_limit_exceeded"),
        (server_error(), openai.InternalServerError, 500, None),
        (
            error(400, "bad", param="messages", code="invalid_value"),
            openai.BadRequestError,
            400,
            "invalid_value",
        ),
    ],
)
def test_errors(
    fake: FakeUpstream,
    sdk: openai.OpenAI,
    reply: Any,
    exception: type[openai.APIStatusError],
    status: int,
    code: str,
) -> None:
    fake.script("[err]", reply)
    with pytest.raises(exception) as caught:
        sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "[err]"}], stream=True
        )
    assert caught.value.status_code == status
    assert caught.value.code == code
    body = caught.value.response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"}
    assert caught.value.response.headers.get("retry-after") == ("7" if status == 429 else None)


def test_hang_notices_the_client_leaving_at_once(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("[hang]", hang())
    with pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=chat("[hang]", stream=True), timeout=0.3)
    gave_up = time.monotonic()
    [record] = fake.chat_requests("[hang]")
    fake.wait_for(lambda: record.disconnected_at, timeout=1)
    assert record.disconnected_at is not None
    assert record.received_at + 0.25 < record.disconnected_at < gave_up + 0.1


def test_stream_that_hangs_after_some_chunks(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("[stall]", text("a b c d e f", hang_after_chunks=2))
    received: list[str] = []
    body = chat("[stall]", stream=True)
    with http.stream("POST", "/chat/completions", json=body, timeout=0.3) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            received.extend(sse_data(response.iter_lines()))
    gave_up = time.monotonic()
    assert len(received) == 2 and "[DONE]" not in received
    [record] = fake.chat_requests("[stall]")
    assert record.chunks_sent == 2
    fake.wait_for(lambda: record.disconnected_at, timeout=1)
    assert record.disconnected_at is not None and record.disconnected_at < gave_up + 0.1


def test_stream_closed_midway(
    fake: FakeUpstream, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script("[drop]", text("a b c d e f", close_after_chunks=2))
    received: list[str] = []
    body = chat("[drop]", stream=True)
    with (
        http.stream("POST", "/chat/completions", json=body) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        received.extend(sse_data(response.iter_lines()))
    assert len(received) == 2
    [record] = fake.chat_requests("[drop]")
    # Once the fake is done with the request, a disconnect it took for the client's is noted.
    fake.wait_for(lambda: record.ended_at, timeout=1)
    assert record.disconnected_at is None, "the server hung up, not the client"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_whole_response_closed_midway(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("[drop]", text("abc", close_after_chunks=0))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/chat/completions", json=chat("[drop]"))


def test_garbage(fake: FakeUpstream, http: httpx.Client, sdk: openai.OpenAI) -> None:
    fake.script("[junk]", garbage())
    whole = http.post("/chat/completions", json=chat("[junk]"))
    assert whole.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        whole.json()
    with http.stream("POST", "/chat/completions", json=chat("[junk]", stream=True)) as response:
        [payload] = sse_data(response.iter_lines())
    with pytest.raises(json.JSONDecodeError):
        json.loads(payload)
    fake.script("[junk]", garbage("<html>bad gateway</html>"))
    assert http.post("/chat/completions", json=chat("[junk]")).text == "<html>bad gateway</html>"


def test_delays(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.script("[slow]", text(["a", "b", "c"], delay_s=0.2, chunk_delay_s=0.1))
    start = time.monotonic()
    arrivals: list[float] = []
    with http.stream("POST", "/chat/completions", json=chat("[slow]", stream=True)) as response:
        arrivals.extend(time.monotonic() - start for _ in sse_data(response.iter_lines()))
    assert arrivals[0] >= 0.2
    assert arrivals[2] - arrivals[0] >= 0.18


def test_unparsable_body_and_unknown_path(fake: FakeUpstream, http: httpx.Client) -> None:
    bad = http.post(
        "/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    missing = http.get("/embeddings")
    assert missing.status_code == 404 and "message" in missing.json()["error"]
    assert [(r.method, r.path, r.body) for r in fake.requests] == [
        ("POST", "/v1/chat/completions", None),
        ("GET", "/v1/embeddings", None),
    ]
    assert [r.path for r in fake.unscripted] == ["/v1/embeddings"]


def test_concurrent_requests_get_their_own_replies(fake: FakeUpstream, http: httpx.Client) -> None:
    for n in range(8):
        fake.script(f"[c{n}]", text(f"reply {n}", delay_s=0.05))

    def ask(n: int) -> str:
        body = http.post("/chat/completions", json=chat(f"[c{n}]")).json()
        return str(body["choices"][0]["message"]["content"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(ask, range(8))) == [f"reply {n}" for n in range(8)]


def test_stop_ends_hanging_requests(caplog: pytest.LogCaptureFixture) -> None:
    outcome: list[BaseException] = []
    with FakeUpstream() as server:
        server.script("[hang]", hang())

        def call() -> None:
            try:
                httpx.post(server.base_url + "/chat/completions", json=chat("[hang]"), timeout=5)
            except httpx.HTTPError as exc:
                outcome.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        server.wait_for(server.chat_requests)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1
    caller.join(timeout=2)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.RemoteProtocolError)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_scripting_mistakes_and_waiting(fake: FakeUpstream) -> None:
    with pytest.raises(ValueError, match="at least one step"):
        fake.script("[none]")
    with pytest.raises(ValueError, match="at least one reply"):
        in_arrival_order()
    with pytest.raises(ValueError, match="hangs or closes"):
        text("x", hang_after_chunks=1, close_after_chunks=1)
    assert fake.wait_for(lambda: 42) == 42
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: None, timeout=0.05)
