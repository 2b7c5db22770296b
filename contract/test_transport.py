"""The validating transport catches what it should, and passes streams on unbuffered.

Served by httpx.MockTransport, so each broken response here is exactly the one under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from contract.openai_check import openai_schemas
from contract.openapi_check import our_spec
from contract.transport import Contract, ContractViolation, ValidatingTransport

CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "fake/fake-model",
    "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None, "logprobs": None}],
}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "fake/fake-model",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
}
ERROR = {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
MODEL = {"id": "fake/fake-model", "object": "model", "created": 0, "owned_by": "fake"}


def sse(*events: Any) -> list[bytes]:
    return [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]


def serve(status: int, body: Any = None, events: list[bytes] | None = None) -> ValidatingTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if events is not None:
            return httpx.Response(
                status, headers={"content-type": "text/event-stream"}, content=iter(events)
            )
        return httpx.Response(status, json=body)

    return ValidatingTransport(inner=httpx.MockTransport(handler))


def without(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    """A deep copy of `data` without the key at `dotted` (list indexes as numbers)."""
    copy = json.loads(json.dumps(data))
    *parents, last = dotted.split(".")
    node: Any = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    del node[last]
    return copy


def exchange(
    transport: ValidatingTransport, method: str, path: str, stream: bool = False
) -> list[str]:
    """Run one request through `transport`; the violations it recorded."""
    with httpx.Client(transport=transport, base_url="http://gateway") as client:
        try:
            with client.stream(method, path) as response:
                for _ in response.iter_bytes():
                    pass
        except ContractViolation:
            pass
    return transport.violations


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("POST", "/v1/chat/completions", 200, COMPLETION),
        ("GET", "/v1/models", 200, {"object": "list", "data": [MODEL]}),
        ("GET", "/v1/models/fake/fake-model", 200, MODEL),
        ("GET", "/v1/models/fake%2Ffake-model", 200, MODEL),
        ("GET", "/v1/models/fake/none", 404, ERROR),
        ("GET", "/v1/nowhere", 404, ERROR),
    ],
)
def test_conforming_responses_pass(method: str, path: str, status: int, body: Any) -> None:
    assert exchange(serve(status, body), method, path) == []


SCHEMA_BREAKS = [
    ("POST", "/v1/chat/completions", 200, without(COMPLETION, "choices.0.logprobs"), "logprobs"),
    (
        "POST",
        "/v1/chat/completions",
        200,
        without(COMPLETION, "choices.0.message.refusal"),
        "refusal",
    ),
    ("POST", "/v1/chat/completions", 200, {**COMPLETION, "created": "1"}, "integer"),
    ("GET", "/v1/models", 200, {"object": "list"}, "data"),
    ("GET", "/v1/models/fake/fake-model", 200, {**MODEL, "created": None}, "created"),
    ("GET", "/v1/models", 401, {"error": {**ERROR["error"], "code": 401}}, "error/code"),
]
SCHEMA_BREAK_IDS = [
    "no-logprobs",
    "no-refusal",
    "created-string",
    "no-data",
    "model-created-null",
    "numeric-error-code",
]


@pytest.mark.parametrize("contract", [our_spec(), openai_schemas()], ids=["ours", "openai"])
@pytest.mark.parametrize(
    ("method", "path", "status", "body", "expected"), SCHEMA_BREAKS, ids=SCHEMA_BREAK_IDS
)
def test_each_contract_catches_broken_bodies(
    contract: Contract, method: str, path: str, status: int, body: Any, expected: str
) -> None:
    request = httpx.Request(method, f"http://gateway{path}")
    response = httpx.Response(status, headers={"content-type": "application/json"})
    problems = contract.response(request, response, json.dumps(body).encode())
    assert problems and expected in problems[0]


@pytest.mark.parametrize("contract", [our_spec(), openai_schemas()], ids=["ours", "openai"])
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (without(CHUNK, "choices.0.finish_reason"), "finish_reason"),
        ({**CHUNK, "object": "chat.completion"}, "chat.completion"),
        (without(CHUNK, "choices.0.delta"), "delta"),
        ({"error": {"message": "x", "type": "server_error", "code": None}}, "param"),
    ],
    ids=["no-finish-reason", "wrong-object", "no-delta", "error-without-param"],
)
def test_each_contract_catches_broken_events(
    contract: Contract, payload: Any, expected: str
) -> None:
    problems = contract.event(payload)
    assert problems and expected in problems[0]


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "expected"),
    [
        ("POST", "/v1/chat/completions", 200, {**COMPLETION, "surprise": 1}, "surprise"),
        ("POST", "/v1/chat/completions", 422, ERROR, "422"),
        ("GET", "/v1/nowhere", 404, {"detail": "Not Found"}, "error"),
    ],
    ids=["undocumented-field", "undocumented-status", "unknown-route-not-openai-error"],
)
def test_broken_responses_are_caught(
    method: str, path: str, status: int, body: Any, expected: str
) -> None:
    violations = exchange(serve(status, body), method, path)
    assert violations and expected in violations[0]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (sse(CHUNK, without(CHUNK, "choices.0.finish_reason"), "[DONE]"), "finish_reason"),
        (sse(CHUNK, {**CHUNK, "id": "chatcmpl-2"}, "[DONE]"), "differs"),
        (sse(CHUNK, {"error": {"message": "x"}}, "[DONE]"), "type"),
        (sse(CHUNK, ERROR, CHUNK, "[DONE]"), "after an error"),
        (sse(CHUNK, "[DONE]", CHUNK), "after [DONE]"),
        (sse(CHUNK, "{not json"), "not JSON"),
        (sse(CHUNK), "without data: [DONE]"),
        ([*sse(CHUNK, "[DONE]"), b"data: {"], "inside an event"),
    ],
    ids=[
        "no-finish-reason",
        "changed-id",
        "bad-error-event",
        "chunk-after-error",
        "event-after-done",
        "not-json",
        "no-done",
        "cut-event",
    ],
)
def test_broken_streams_are_caught(events: list[bytes], expected: str) -> None:
    violations = exchange(serve(200, events=events), "POST", "/v1/chat/completions")
    assert violations and expected in violations[0]


def test_conforming_stream_with_error_event_passes() -> None:
    events = sse(CHUNK, ERROR, "[DONE]")
    assert exchange(serve(200, events=events), "POST", "/v1/chat/completions") == []


def test_stream_is_passed_on_as_it_arrives() -> None:
    produced: list[int] = []

    def events() -> Iterator[bytes]:
        for i, event in enumerate(sse(CHUNK, CHUNK, "[DONE]")):
            produced.append(i)
            yield event

    transport = ValidatingTransport(
        inner=httpx.MockTransport(
            lambda _: httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=events()
            )
        )
    )
    with (
        httpx.Client(transport=transport, base_url="http://gateway") as client,
        client.stream("POST", "/v1/chat/completions") as response,
    ):
        counts = [len(produced) for _ in response.iter_raw()]
    assert counts == [1, 2, 3], "each event must reach the reader before the next is produced"
    assert transport.violations == []


def test_a_reader_may_stop_early() -> None:
    transport = serve(200, events=sse(CHUNK, CHUNK, "[DONE]"))
    with (
        httpx.Client(transport=transport, base_url="http://gateway") as client,
        client.stream("POST", "/v1/chat/completions") as response,
    ):
        next(response.iter_raw())
    assert transport.violations == []
