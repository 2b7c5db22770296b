"""An httpx transport that holds every response the gateway sends to the contract.

Tests talk to the gateway through it (the `client` and `http` fixtures), so each response
they see is checked, and each event of a stream is checked as it passes, without holding
the stream back. A violation is raised where it is seen (a ContractViolation, which is an
AssertionError) and also kept in `violations`, because a client may swallow the raise
(the openai SDK turns it into APIConnectionError); `assert_clean` reports them all.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

import httpx
import httpx2

from .anthropic_check import anthropic_types, is_anthropic_request
from .openai_check import openai_schemas
from .openapi_check import our_spec
from .sse import EventParser

#: What a stream's head is checked with (one SSE comment): its events are checked one by one.
STREAM_STAND_IN = b": checked event by event\n\n"


class Contract(Protocol):
    """One document responses are held to; each method returns the problems it finds."""

    def response(
        self, request: httpx.Request, response: httpx.Response, body: bytes
    ) -> list[str]: ...

    def event(self, payload: Any) -> list[str]: ...

    def message_event(self, payload: Any) -> list[str]: ...

    def response_event(self, payload: Any) -> list[str]: ...


class ContractViolation(AssertionError):
    """A response or stream event that contradicts a contract."""


def default_contracts() -> tuple[Contract, ...]:
    """Our spec, OpenAI's own schemas and Anthropic's SDK types: a response must satisfy each
    that speaks for its route."""
    return (our_spec(), openai_schemas(), anthropic_types())


def is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


class StreamCheck:
    """The rules of one chat completion stream, applied event by event.

    Each `data:` is a chunk or an error event, checked by every contract; all chunks share
    `id`, `created` and `model`; nothing but `[DONE]` follows an error event; `[DONE]` is
    last, and the stream does not end without it.
    """

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self._contracts = contracts
        self._parser = EventParser()
        self._identity: tuple[Any, ...] | None = None
        self._errored = False
        self._done = False

    def feed(self, chunk: bytes) -> list[str]:
        return [p for data in self._parser.feed(chunk) for p in self._event(data)]

    def end(self) -> list[str]:
        """Problems of how the stream ended; only for a stream that was read to its end."""
        problems = [] if self._done else ["stream ended without data: [DONE]"]
        if self._parser.leftover.strip():
            problems.append(f"stream ended inside an event: {self._parser.leftover[:200]!r}")
        return problems

    def _event(self, data: str) -> list[str]:
        if self._done:
            return [f"event after [DONE]: {data[:200]}"]
        if data == "[DONE]":
            self._done = True
            return []
        if self._errored:
            return [f"event after an error event: {data[:200]}"]
        try:
            payload = json.loads(data)
        except ValueError:
            return [f"event is not JSON: {data[:200]}"]
        problems = [p for c in self._contracts for p in c.event(payload)]
        if isinstance(payload, dict) and "error" in payload:
            self._errored = True
        elif isinstance(payload, dict):
            identity = (payload.get("id"), payload.get("created"), payload.get("model"))
            self._identity = self._identity or identity
            if identity != self._identity:
                problems.append(
                    f"chunk (id, created, model) {identity} differs from the first chunk's "
                    f"{self._identity}"
                )
        return problems


class MessageStreamCheck:
    """The rules of one Anthropic Messages stream, applied event by event.

    Each event is named (`event:`) after its data's `type` and checked by every contract;
    `message_start` comes first; each content block is opened at the next index, grown only
    by deltas of its kind while it is the open one, and closed; a tool_use block's
    `input_json_delta`s make a JSON object; `message_delta` comes once no block is open, and
    `message_stop` after it ends the stream; nothing follows `message_stop` or an `error`
    event, and the stream does not end without one of them.
    """

    _DELTAS: ClassVar[dict[str, tuple[str, ...]]] = {
        "text": ("text_delta",),
        "thinking": ("thinking_delta", "signature_delta"),
        "tool_use": ("input_json_delta",),
    }

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self._contracts = contracts
        self._parser = EventParser()
        self._started = False
        self._blocks = 0
        self._open: tuple[int, str] | None = None
        self._json = ""
        self._delta_seen = False
        self._ended: str | None = None  # "message_stop" or "error"

    def feed(self, chunk: bytes) -> list[str]:
        return [p for name, data in self._parser.feed_named(chunk) for p in self._event(name, data)]

    def end(self) -> list[str]:
        problems = [] if self._ended else ["stream ended without message_stop or an error event"]
        if self._parser.leftover.strip():
            problems.append(f"stream ended inside an event: {self._parser.leftover[:200]!r}")
        return problems

    def _event(self, name: str | None, data: str) -> list[str]:
        if self._ended:
            return [f"event after {self._ended}: {data[:200]}"]
        try:
            payload = json.loads(data)
        except ValueError:
            return [f"event is not JSON: {data[:200]}"]
        problems = [p for c in self._contracts for p in c.message_event(payload)]
        kind = payload.get("type") if isinstance(payload, dict) else None
        if name != kind:
            problems.append(f"event named {name!r} carries a {kind!r} event")
        if kind in ("ping", None) or problems:
            return problems
        if kind == "error":
            self._ended = "error"
            return problems
        if not self._started and kind != "message_start":
            return [f"{kind} before message_start"]
        return problems + self._order(kind, payload)

    def _order(self, kind: str, payload: dict[str, Any]) -> list[str]:
        if kind == "message_start":
            if self._started:
                return ["a second message_start"]
            self._started = True
        elif kind == "content_block_start":
            if self._open is not None or self._delta_seen:
                return ["content_block_start while a block is open, or after message_delta"]
            if payload["index"] != self._blocks:
                return [f"content block index {payload['index']}, expected {self._blocks}"]
            self._open, self._json = (self._blocks, payload["content_block"]["type"]), ""
            self._blocks += 1
        elif kind == "content_block_delta":
            if self._open is None or payload["index"] != self._open[0]:
                return [f"content_block_delta for block {payload['index']}, which is not open"]
            delta = payload["delta"]
            if delta["type"] not in self._DELTAS.get(self._open[1], ()):
                return [f"a {delta['type']} in a {self._open[1]} block"]
            self._json += delta.get("partial_json", "")
        elif kind == "content_block_stop":
            if self._open is None or payload["index"] != self._open[0]:
                return [f"content_block_stop for block {payload['index']}, which is not open"]
            tool = self._open[1] == "tool_use"
            self._open = None
            if tool and not isinstance(json.loads(self._json or "{}"), dict):
                return [f"a tool_use input that is not a JSON object: {self._json[:200]}"]
        elif kind == "message_delta":
            if self._open is not None or self._delta_seen:
                return ["message_delta while a block is open, or twice"]
            self._delta_seen = True
        elif kind == "message_stop":
            self._ended = "message_stop"
            if not self._delta_seen:
                return ["message_stop without message_delta"]
        return []


_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


class ResponsesStreamCheck:
    """The rules of one Responses stream, applied event by event.

    Each event is checked by every contract against the schema of its `type`; its `event:`
    name is its `type`; `sequence_number` counts from 0 without a gap; `response.created`
    and `response.in_progress` come first; every response in the stream has the same `id`;
    an `error` event is followed by `response.failed` only; a terminal event
    (`response.completed`, `.incomplete`, `.failed`) is last, and the stream does not end
    without one. Lines end with `\n` only.
    """

    def __init__(self, contracts: Sequence[Contract]) -> None:
        self._contracts = contracts
        self._parser = EventParser()
        self._count = 0
        self._id: Any = None
        self._errored = False
        self._ended = False

    def feed(self, chunk: bytes) -> list[str]:
        problems = (
            ["a line ends with \\r: events must use \\n line endings"] if b"\r" in chunk else []
        )
        for name, data in self._parser.feed_named(chunk):
            problems += self._event(name, data)
        return problems

    def end(self) -> list[str]:
        problems = (
            []
            if self._ended
            else ["stream ended without response.completed, .incomplete or .failed"]
        )
        if self._parser.leftover.strip():
            problems.append(f"stream ended inside an event: {self._parser.leftover[:200]!r}")
        return problems

    def _event(self, name: str | None, data: str) -> list[str]:
        if self._ended:
            return [f"event after the stream's terminal event: {data[:200]}"]
        try:
            payload = json.loads(data)
        except ValueError:
            return [f"event is not JSON: {data[:200]}"]
        if not isinstance(payload, dict):
            return [f"event is not a JSON object: {data[:200]}"]
        problems = [p for c in self._contracts for p in c.response_event(payload)]
        kind = payload.get("type")
        if name != kind:
            problems.append(f"event: line {name!r} is not the event's type {kind!r}")
        number = payload.get("sequence_number")
        if number != self._count:
            problems.append(f"{kind}: sequence_number {number!r}, expected {self._count}")
        expected_first = ("response.created", "response.in_progress")
        if self._count < 2 and kind != expected_first[self._count]:
            problems.append(
                f"event {self._count} is {kind!r}, expected {expected_first[self._count]}"
            )
        if self._errored and kind != "response.failed":
            problems.append(f"{kind} after an error event (only response.failed may follow)")
        self._count += 1
        response = payload.get("response")
        if isinstance(response, dict):
            self._id = self._id or response.get("id")
            if response.get("id") != self._id:
                problems.append(f"{kind}: response id {response.get('id')!r} is not {self._id!r}")
        self._errored = self._errored or kind == "error"
        self._ended = kind in _TERMINAL
        return problems


def stream_check(
    contracts: Sequence[Contract], request: httpx.Request
) -> StreamCheck | MessageStreamCheck | ResponsesStreamCheck:
    """The rules of the stream answering `request`: Anthropic's, a Responses stream's, or a
    chat stream's."""
    if is_anthropic_request(request):
        return MessageStreamCheck(contracts)
    if request.url.path == "/v1/responses":
        return ResponsesStreamCheck(contracts)
    return StreamCheck(contracts)


def head_problems(
    contracts: Sequence[Contract], request: httpx.Request, response: httpx.Response
) -> list[str]:
    """Problems of a stream's status and media type (its body is the events' business)."""
    return [p for c in contracts for p in c.response(request, response, STREAM_STAND_IN)]


def whole_problems(
    contracts: Sequence[Contract],
    request: httpx.Request,
    response: httpx.Response,
    body: bytes,
    *,
    complete: bool = True,
) -> list[str]:
    """Problems of a response read in full (`complete=False`: a stream cut short on purpose)."""
    if not is_event_stream(response):
        return [p for c in contracts for p in c.response(request, response, body)]
    stream = stream_check(contracts, request)
    return (
        head_problems(contracts, request, response)
        + stream.feed(body)
        + (stream.end() if complete else [])
    )


class ValidatingTransport(httpx.BaseTransport):
    def __init__(
        self, contracts: Sequence[Contract] | None = None, inner: httpx.BaseTransport | None = None
    ) -> None:
        self.contracts = tuple(contracts) if contracts is not None else default_contracts()
        self.inner = inner or httpx.HTTPTransport()
        self.violations: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if is_event_stream(response):
            self.report(request, head_problems(self.contracts, request, response))
            stream = _CheckedStream(
                response.stream,
                stream_check(self.contracts, request),
                lambda p: self.report(request, p),
            )
            return _rebuilt(request, response, stream)
        # The gateway does not compress, so the decoded body is also the body on the wire.
        body = response.read()
        self.report(request, whole_problems(self.contracts, request, response, body))
        return _rebuilt(request, response, httpx.ByteStream(body))

    def report(self, request: httpx.Request, problems: list[str]) -> None:
        if problems:
            found = [f"{request.method} {request.url.raw_path.decode()}: {p}" for p in problems]
            self.violations += found
            raise ContractViolation("\n".join(found))

    def assert_clean(self) -> None:
        """Fail if any response seen so far broke a contract (even if the client hid it)."""
        assert not self.violations, "contract violations:\n" + "\n".join(self.violations)

    def close(self) -> None:
        self.inner.close()


def _rebuilt(
    request: httpx.Request, response: httpx.Response, stream: httpx.SyncByteStream
) -> httpx.Response:
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        extensions=response.extensions,
        request=request,
    )


class _CheckedStream(httpx.SyncByteStream):
    """Passes each piece of the body on at once, after the stream check has seen it."""

    def __init__(
        self,
        inner: httpx.SyncByteStream,
        check: StreamCheck | MessageStreamCheck | ResponsesStreamCheck,
        report: Callable[[list[str]], None],
    ) -> None:
        self._inner = inner
        self._check = check
        self._report = report

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._report(self._check.feed(chunk))
            yield chunk
        # Only a stream read to its end must have ended properly; a reader may stop early.
        self._report(self._check.end())

    def close(self) -> None:
        self._inner.close()


class ValidatingTransport2(httpx2.BaseTransport):
    """The same checks for clients built on httpx2 (the anthropic SDK 2.x refuses httpx's
    clients); each exchange is checked through its httpx twin, and the violations are kept in
    `checks` (a ValidatingTransport that sends nothing itself)."""

    def __init__(
        self, contracts: Sequence[Contract] | None = None, inner: httpx2.BaseTransport | None = None
    ) -> None:
        self.checks = ValidatingTransport(contracts, inner=httpx.MockTransport(_unused))
        self.inner = inner or httpx2.HTTPTransport()

    @property
    def violations(self) -> list[str]:
        return self.checks.violations

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        twin = httpx.Request(request.method, str(request.url), headers=request.headers.raw)
        head = httpx.Response(response.status_code, headers=response.headers.raw, request=twin)
        contracts = self.checks.contracts
        if is_event_stream(head):
            self.checks.report(twin, head_problems(contracts, twin, head))
            check = stream_check(contracts, twin)
            return httpx2.Response(
                response.status_code,
                headers=response.headers,
                stream=_CheckedStream2(
                    response.stream, check, lambda p: self.checks.report(twin, p)
                ),
                extensions=response.extensions,
                request=request,
            )
        body = response.read()
        self.checks.report(twin, whole_problems(contracts, twin, head, body))
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx2.ByteStream(body),
            extensions=response.extensions,
            request=request,
        )

    def assert_clean(self) -> None:
        self.checks.assert_clean()

    def close(self) -> None:
        self.inner.close()


def _unused(request: httpx.Request) -> httpx.Response:
    raise AssertionError("the httpx twin of an httpx2 exchange sends nothing")


class _CheckedStream2(httpx2.SyncByteStream):
    def __init__(
        self,
        inner: Any,
        check: StreamCheck | MessageStreamCheck | ResponsesStreamCheck,
        report: Callable[[list[str]], None],
    ) -> None:
        self._inner = inner
        self._check = check
        self._report = report

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._report(self._check.feed(chunk))
            yield chunk
        self._report(self._check.end())

    def close(self) -> None:
        self._inner.close()
