"""A scripted, OpenAI-compatible fake upstream model server for the tests.

The integration tests run a real ``opencode serve`` whose custom provider
(``@ai-sdk/openai-compatible``) points at ``FakeUpstream.base_url``; the tests also
talk to the fake directly. It answers ``POST /v1/chat/completions`` (streamed as
SSE or not) and ``GET /v1/models`` the way OpenAI does, so what the gateway sees is
exactly what a real provider would have produced, but scripted.

A test scripts what the model does for requests whose messages contain a marker
string of its own (which keeps tests that share one fake apart), step by step: the
reply to a request depends on the request alone, namely on how many assistant turns
its conversation already holds, never on the order in which requests arrive::

    fake.script(marker, text("Hello"))            # whatever the conversation holds
    fake.script(
        marker,
        tool_calls(ToolCall("get_weather", '{"city": "Lima"}')),  # step 0: the question
        text("It is 18 C in Lima."),  # step 1: the tool result is in the history
    )

A request no rule answers (no marker matches, or a step past the script) gets an
error and is recorded in ``FakeUpstream.unscripted``; the test fixtures fail the test
that sent it. Replies cover text, reasoning, tool calls, an echo of the prompt, error
statuses, a server that hangs, a stream cut off midway and garbage bodies. Every
request is recorded, with the moment the client hung up (so tests can assert that an
abort really closed the upstream connection) and how far its reply got.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

MODEL_IDS = ("fake-model", "fake-reasoning-model")
"""The ids ``GET /v1/models`` lists; any other model name is accepted all the same."""

_T = TypeVar("_T")
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


# --- Replies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Token counts a completion reports (the gateway maps them, so tests set them)."""

    prompt_tokens: int = 10
    completion_tokens: int = 5
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object, details included as OpenAI sends them."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }


@dataclass(frozen=True)
class ToolCall:
    """One function call the model makes; ``arguments`` is the JSON text of its input.

    Without an ``id`` the fake makes one up that is unique on this server.
    """

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reply:
    """What the fake answers one request with; ``delay_s`` holds back its first byte."""

    delay_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Completion(Reply):
    """A successful chat completion, streamed in the given pieces when asked to stream.

    ``hang_after_chunks`` / ``close_after_chunks`` cut the stream after that many SSE
    events (``[DONE]`` never comes) and then go silent or drop the connection; for a
    non-streamed request they hang before answering / drop the connection half-way
    through the body.
    """

    content: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()
    calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    usage: Usage = Usage()
    chunk_delay_s: float = 0.0
    hang_after_chunks: int | None = None
    close_after_chunks: int | None = None


@dataclass(frozen=True, kw_only=True)
class ErrorReply(Reply):
    """An HTTP error with OpenAI's error body, and ``Retry-After`` when one is given."""

    status: int
    message: str
    error_type: str
    code: str | None = None
    param: str | None = None
    retry_after: int | None = None


@dataclass(frozen=True, kw_only=True)
class Hang(Reply):
    """Accept the request and send nothing at all until the client gives up."""


@dataclass(frozen=True, kw_only=True)
class Garbage(Reply):
    """A 200 whose body is not what the protocol promises (``None``: a default per mode)."""

    body: str | None = None


@dataclass(frozen=True, kw_only=True)
class Echo(Reply):
    """A completion whose content is ``prefix`` and the text of the last user message.

    Like a model that obeys, it answers a request that forces a tool (``tool_choice``
    ``"required"`` or a named function) with a call of that tool (the first one offered, for
    ``"required"``) whose arguments are ``{}``.
    """

    prefix: str = "echo: "


@dataclass(eq=False)
class InArrivalOrder:
    """Successive requests at one step get ``replies`` one after the other, in arrival order.

    For the one case where order is the point: the same request sent twice (a retry) that
    must be answered differently. Past the last reply, a request is unscripted. (The fake
    takes replies under its lock.)
    """

    replies: tuple[Reply, ...]
    served: int = 0

    def take(self) -> Reply | None:
        self.served += 1
        return self.replies[self.served - 1] if self.served <= len(self.replies) else None


Step = Reply | InArrivalOrder
"""What the model does at one step of a conversation: a reply, or replies in arrival order."""


def text(
    content: str | Sequence[str] = "ok",
    *,
    reasoning: str | Sequence[str] = "",
    calls: Sequence[ToolCall] = (),
    finish_reason: str | None = None,
    usage: Usage = Usage(),
    delay_s: float = 0.0,
    chunk_delay_s: float = 0.0,
    hang_after_chunks: int | None = None,
    close_after_chunks: int | None = None,
) -> Completion:
    """A completion; a string is cut into about three chunks, a sequence is used as is.

    ``finish_reason`` defaults to ``"tool_calls"`` when there are calls, else ``"stop"``.
    """
    if hang_after_chunks is not None and close_after_chunks is not None:
        raise ValueError("a stream either hangs or closes, not both")
    return Completion(
        content=_chunks(content),
        reasoning=_chunks(reasoning),
        calls=tuple(calls),
        finish_reason=finish_reason or ("tool_calls" if calls else "stop"),
        usage=usage,
        delay_s=delay_s,
        chunk_delay_s=chunk_delay_s,
        hang_after_chunks=hang_after_chunks,
        close_after_chunks=close_after_chunks,
    )


def tool_calls(*calls: ToolCall, content: str = "", reasoning: str = "") -> Completion:
    """A completion that calls tools (finish reason ``"tool_calls"``)."""
    return text(content, reasoning=reasoning, calls=calls)


def error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    retry_after: int | None = None,
    delay_s: float = 0.0,
) -> ErrorReply:
    """Any OpenAI-shaped error response."""
    return ErrorReply(
        status=status,
        message=message,
        error_type=error_type,
        code=code,
        param=param,
        retry_after=retry_after,
        delay_s=delay_s,
    )


def invalid_api_key() -> ErrorReply:
    """OpenAI's 401 for a wrong key."""
    return error(401, "Incorrect API key provided: sk-fake.", code="invalid_api_key")


def rate_limited(retry_after: int | None = 1) -> ErrorReply:
    """OpenAI's 429, with a ``Retry-After`` header unless ``retry_after`` is None."""
    return error(
        429,
        "Rate limit reached for requests.",
        error_type="requests",
        code="rate_limit_exceeded",
        retry_after=retry_after,
    )


def server_error() -> ErrorReply:
    """OpenAI's 500."""
    return error(
        500,
        "The server had an error while processing your request.",
        error_type="server_error",
    )


def hang() -> Hang:
    """A reply that never comes."""
    return Hang()


def garbage(body: str | None = None) -> Garbage:
    """A 200 with a body no client can parse: invalid SSE when streaming, else not JSON."""
    return Garbage(body=body)


def echo(prefix: str = "echo: ") -> Echo:
    """A completion repeating the last user message after ``prefix`` (in about three chunks)."""
    return Echo(prefix=prefix)


def in_arrival_order(*replies: Reply) -> InArrivalOrder:
    """One step answered by arrival: the first request gets ``replies[0]``, the next the
    second, and so on; one more is unscripted. Only for a request that is repeated on
    purpose (a retry); everything else is scripted by the state of its conversation."""
    if not replies:
        raise ValueError("in_arrival_order() needs at least one reply")
    return InArrivalOrder(tuple(replies))


def _split(value: str, parts: int = 3) -> tuple[str, ...]:
    """Cut ``value`` into about ``parts`` pieces, so streams really arrive in fragments."""
    if not value:
        return ()
    size = math.ceil(len(value) / parts)
    return tuple(value[i : i + size] for i in range(0, len(value), size))


def _chunks(value: str | Sequence[str]) -> tuple[str, ...]:
    return _split(value) if isinstance(value, str) else tuple(value)


# --- Requests ------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the fake received; ``seq`` numbers requests in arrival order.

    ``disconnected_at`` (``time.monotonic()``) is set when the client closed the
    connection before the reply was complete; the fake notices within milliseconds.
    ``chunks_sent`` counts the SSE events (or, not streaming, body parts) sent so far, and
    ``ended_at`` is set once the fake is done with the request, whoever ended it.
    ``unscripted`` marks a request that no rule answered (it got an error).
    """

    path: str
    method: str
    headers: dict[str, str]
    body: Any
    received_at: float
    seq: int = 0
    disconnected_at: float | None = None
    chunks_sent: int = 0
    ended_at: float | None = None
    unscripted: bool = False

    @property
    def step(self) -> int:
        """How many assistant turns the conversation already holds: the step it is at."""
        return conversation_step(self.body)


def _messages_json(body: Any) -> str:
    """The serialized ``messages`` of a chat request: what markers are matched against."""
    if not isinstance(body, dict):
        return ""
    return json.dumps(body.get("messages"), ensure_ascii=False)


def _last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user message, whether plain or a list of content parts."""
    messages = body.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(str(p.get("text", "")) for p in parts)
    return ""


def _forced_tool(body: Any) -> str | None:
    """The tool a request forces the model to call, if it forces one."""
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    if choice == "required" and tools:
        name = (tools[0].get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    return None


def conversation_step(body: Any) -> int:
    """The number of assistant messages in a chat request: 0 for the opening question, 1
    once the model has answered (or called a tool) and the conversation went on, ..."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return 0
    return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")


@dataclass(eq=False)
class Rule:
    """What the model does for requests whose messages contain ``match``, step by step.

    One step answers every request, whatever its conversation holds; several answer by
    position: ``steps[i]`` for a conversation holding ``i`` assistant turns, and a
    conversation past the last step is unscripted.
    """

    match: str
    steps: tuple[Step, ...]

    def reply_for(self, step: int) -> Reply | None:
        if len(self.steps) == 1:
            chosen = self.steps[0]
        elif step < len(self.steps):
            chosen = self.steps[step]
        else:
            return None
        return chosen.take() if isinstance(chosen, InArrivalOrder) else chosen


# --- Wire format ---------------------------------------------------------------------


_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream", "cache-control": "no-cache"}


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in headers.items()]


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def _stream_events(
    reply: Completion, cid: str, created: int, model: str, include_usage: bool
) -> list[bytes]:
    """The SSE events of a streamed completion as OpenAI sends them, without ``[DONE]``.

    Reasoning, then content, then each tool call (id and name first, then its
    arguments in fragments); the first delta also carries the role.
    """
    deltas: list[dict[str, Any]] = [{"reasoning_content": piece} for piece in reply.reasoning]
    deltas += [{"content": piece} for piece in reply.content]
    for index, call in enumerate(reply.calls):
        opening = {"index": index, "id": _call_id(call, cid, index), "type": "function"}
        deltas.append(
            {"tool_calls": [{**opening, "function": {"name": call.name, "arguments": ""}}]}
        )
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _split(call.arguments)
        ]
    first = deltas.pop(0) if deltas else {"content": ""}
    deltas.insert(0, {"role": "assistant", **first})

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
        }

    def choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    events = [chunk([choice(delta, None)]) for delta in deltas]
    events.append(chunk([choice({}, reply.finish_reason)]))
    if include_usage:
        events.append({**chunk([]), "usage": reply.usage.to_json()})
    return [_sse(event) for event in events]


def _completion_body(reply: Completion, cid: str, created: int, model: str) -> dict[str, Any]:
    """The ``chat.completion`` object of a non-streamed completion."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(reply.content) or (None if reply.calls else ""),
        "refusal": None,
    }
    if reply.reasoning:
        message["reasoning_content"] = "".join(reply.reasoning)
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": _call_id(call, cid, index),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(reply.calls)
        ]
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        ],
        "usage": reply.usage.to_json(),
    }


def _call_id(call: ToolCall, cid: str, index: int) -> str:
    return call.id or f"call_{cid.removeprefix('chatcmpl-')}_{index}"


def _error_body(reply: ErrorReply) -> dict[str, Any]:
    return {
        "error": {
            "message": reply.message,
            "type": reply.error_type,
            "param": reply.param,
            "code": reply.code,
        }
    }


# --- Server --------------------------------------------------------------------------


class _Playback(Response):
    """Plays one scripted reply while watching for the client to hang up.

    Waiting on ``receive()`` for ``http.disconnect`` next to the reply is what makes
    disconnects visible at once, even while the reply is silent; when the client goes,
    the reply is cancelled and the time recorded.
    """

    def __init__(self, fake: FakeUpstream, record: RecordedRequest, reply: Reply) -> None:
        self._fake = fake
        self._record = record
        self._reply = reply
        body = record.body if isinstance(record.body, dict) else {}
        self._stream = body.get("stream") is True
        self._include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        self._model = str(body.get("model") or MODEL_IDS[0])
        # Set once the server has ended the exchange itself, so that the disconnect
        # uvicorn then reports is not mistaken for the client's.
        self._done = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    if not self._done:
                        self._fake._note_disconnect(self._record, time.monotonic())
                    group.cancel_scope.cancel()

                group.start_soon(watch)
                await anyio.sleep(self._reply.delay_s)
                await self._play(scope, send)
                group.cancel_scope.cancel()
        finally:
            self._record.ended_at = time.monotonic()

    async def _body(self, send: Send, body: bytes, *, more: bool) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": more})
        self._record.chunks_sent += 1

    async def _play(self, scope: Scope, send: Send) -> None:
        reply = self._reply
        if isinstance(reply, Completion) and self._stream:
            await self._play_stream(reply, scope, send)
        elif isinstance(reply, Completion):
            await self._play_whole(reply, scope, send)
        elif isinstance(reply, ErrorReply):
            retry = {} if reply.retry_after is None else {"retry-after": str(reply.retry_after)}
            await self._finish(
                send, reply.status, {**_JSON, **retry}, json.dumps(_error_body(reply)).encode()
            )
        elif isinstance(reply, Garbage):
            default = "data: {this is not json\n\n" if self._stream else "this is not json"
            await self._finish(
                send, 200, _SSE if self._stream else _JSON, (reply.body or default).encode()
            )
        else:
            await anyio.sleep_forever()

    async def _play_stream(self, reply: Completion, scope: Scope, send: Send) -> None:
        cid, created = self._fake._next_completion_id(), int(time.time())
        events = _stream_events(reply, cid, created, self._model, self._include_usage)
        cut = (
            reply.hang_after_chunks
            if reply.hang_after_chunks is not None
            else reply.close_after_chunks
        )
        await send({"type": "http.response.start", "status": 200, "headers": _raw(_SSE)})
        for i, event in enumerate(events[:cut]):
            if i:
                await anyio.sleep(reply.chunk_delay_s)
            await self._body(send, event, more=True)
        if reply.hang_after_chunks is not None:
            await anyio.sleep_forever()
        elif reply.close_after_chunks is not None:
            await self._drop(scope)
        else:
            await anyio.sleep(reply.chunk_delay_s)
            self._done = True
            await self._body(send, _sse("[DONE]"), more=False)

    async def _play_whole(self, reply: Completion, scope: Scope, send: Send) -> None:
        cid, created = self._fake._next_completion_id(), int(time.time())
        body = json.dumps(_completion_body(reply, cid, created, self._model)).encode()
        if reply.hang_after_chunks is not None:
            await anyio.sleep_forever()
        elif reply.close_after_chunks is not None:
            headers = {**_JSON, "content-length": str(len(body))}
            await send({"type": "http.response.start", "status": 200, "headers": _raw(headers)})
            await self._body(send, body[: len(body) // 2], more=True)
            await self._drop(scope)
        else:
            await self._finish(send, 200, _JSON, body)

    async def _finish(self, send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
        self._done = True
        await send({"type": "http.response.start", "status": status, "headers": _raw(headers)})
        await self._body(send, body, more=False)

    async def _drop(self, scope: Scope) -> None:
        """Cut the connection under the half-sent response, then wait to be cancelled."""
        self._done = True
        self._fake._drop_connection(scope["client"])
        await anyio.sleep_forever()


class FakeUpstream:
    """The fake OpenAI-compatible server: a Starlette app under uvicorn in its own thread.

    Use as a context manager, or ``start()`` / ``stop()``. Scripting and records are
    guarded by a lock, so tests may run requests against it from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._records: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._next_seq = 0
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/{path:path}", self._not_found, methods=_ALL_METHODS),
            ]
        )

    # Lifecycle

    def start(self) -> FakeUpstream:
        """Start serving on a free port and return once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        # log_config=None: leave the process's logging setup (the gateway's) alone.
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            log_config=None,
            access_log=False,
            # Longer than the clients' idle keep-alive: a server closing an idle connection
            # just as OpenCode reuses it would fail a request (a real, but unscripted, fault).
            timeout_keep_alive=120,
            http="h11",
            ws="none",
            lifespan="off",
        )
        server = uvicorn.Server(config)
        self._server, self._stopping = server, False
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name=f"fake-upstream-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("FakeUpstream did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Drop every open connection (hanging replies included) and stop the server."""
        if self._thread is None:
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._shut_down)
        self._thread.join(timeout=10)
        self._thread = self._loop = self._server = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The provider ``baseURL``: ends in ``/v1``, as OpenAI clients expect."""
        return f"http://127.0.0.1:{self.port}/v1"

    # Scripting and records

    def script(self, match: str, *steps: Step) -> Rule:
        """Script what the model does for requests whose messages contain ``match``.

        ``steps`` are its replies at each step of the conversation: ``steps[i]`` answers a
        request whose messages already hold ``i`` assistant turns (so in a tool round trip
        the call is step 0 and the answer to the tool's result step 1). A request past the
        last step is unscripted. A single step answers at every step: "the model says this".
        The newest rule wins when several match; ``remove()`` takes one back.
        """
        if not steps:
            raise ValueError("script() needs at least one step")
        rule = Rule(match, tuple(steps))
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        """Take back a rule ``script()`` returned."""
        with self._lock:
            self._rules.remove(rule)

    def reset(self) -> None:
        """Forget all rules and recorded requests."""
        with self._lock:
            self._rules.clear()
            self._records.clear()

    def forget_requests(self) -> None:
        """Drop the recorded requests, keeping the rules (for long runs: the bench)."""
        with self._lock:
            self._records.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a new list of the live records)."""
        with self._lock:
            return list(self._records)

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next request will get: requests since a moment are those at or
        above what this said then."""
        with self._lock:
            return self._next_seq

    @property
    def unscripted(self) -> list[RecordedRequest]:
        """The requests no rule answered, oldest first."""
        return [r for r in self.requests if r.unscripted]

    def chat_requests(self, match: str | None = None) -> list[RecordedRequest]:
        """The chat completion requests, only those whose messages contain ``match`` if given."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.path.endswith("/chat/completions")
            and (match is None or match in _messages_json(r.body))
        ]

    @staticmethod
    def wait_for(predicate: Callable[[], _T], timeout: float = 5.0) -> _T:
        """Poll ``predicate`` until it returns something truthy and return that.

        Requests arrive from other threads and processes, so tests wait for them.
        """
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(0.01)
        return result

    # Server side (runs on the server's event loop)

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        asyncio.run(serve())

    def _shut_down(self) -> None:
        """Close every connection, so that hanging replies end, then let uvicorn exit."""
        assert self._server is not None
        self._stopping = True
        for connection in list(self._server.server_state.connections):
            connection.transport.close()
        self._server.should_exit = True

    async def _read(self, request: Request) -> RecordedRequest:
        received_at = time.monotonic()
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return RecordedRequest(
            path=request.url.path,
            method=request.method,
            headers=dict(request.headers),
            body=body,
            received_at=received_at,
        )

    def _keep(self, record: RecordedRequest) -> None:
        """Number and record a request (with the lock held), once its answer is chosen."""
        record.seq = self._next_seq
        self._next_seq += 1
        self._records.append(record)

    async def _chat(self, request: Request) -> Response:
        record = await self._read(request)
        with self._lock:
            if isinstance(record.body, dict):
                reply = self._pick(record)
            else:
                reply = error(400, "We could not parse the JSON body of your request.")
            self._keep(record)
        return _Playback(self, record, reply)

    def _pick(self, record: RecordedRequest) -> Reply:
        """The reply of the newest rule matching the request, for its step (lock held)."""
        haystack = _messages_json(record.body)
        rule = next((r for r in reversed(self._rules) if r.match in haystack), None)
        if rule is None:
            return self._unscripted(record, "no rule matches its messages")
        reply = rule.reply_for(record.step)
        if reply is None:
            why = (
                f"the rule for {rule.match!r} scripts steps 0 to {len(rule.steps) - 1}"
                if record.step >= len(rule.steps) > 1
                else f"the in_arrival_order() replies for {rule.match!r} are used up"
            )
            return self._unscripted(record, why)
        if isinstance(reply, Echo):
            forced = _forced_tool(record.body)
            if forced is not None:
                return tool_calls(ToolCall(forced, "{}"))
            return text(reply.prefix + _last_user_text(record.body), delay_s=reply.delay_s)
        return reply

    @staticmethod
    def _unscripted(record: RecordedRequest, why: str) -> ErrorReply:
        record.unscripted = True
        last = _last_user_text(record.body)[-200:]
        return error(
            400,
            f"The fake upstream has no script for this request ({why}; step {record.step}, "
            f"last user message {last!r}). Script it with FakeUpstream.script().",
            code="unscripted_request",
        )

    async def _models(self, request: Request) -> Response:
        record = await self._read(request)
        with self._lock:
            self._keep(record)
        record.ended_at = time.monotonic()
        models = [
            {"id": m, "object": "model", "created": 0, "owned_by": "fake-upstream"}
            for m in MODEL_IDS
        ]
        return JSONResponse({"object": "list", "data": models})

    async def _not_found(self, request: Request) -> Response:
        record = await self._read(request)
        record.unscripted = True
        with self._lock:
            self._keep(record)
        record.ended_at = time.monotonic()
        reply = error(
            404, f"Unknown request URL: {request.method} {request.url.path}.", code="unknown_url"
        )
        return JSONResponse(_error_body(reply), status_code=404)

    def _next_completion_id(self) -> str:
        with self._lock:
            return f"chatcmpl-fake{next(self._ids)}"

    def _note_disconnect(self, record: RecordedRequest, at: float) -> None:
        if self._stopping:
            return
        with self._lock:
            if record.disconnected_at is None:
                record.disconnected_at = at

    def _drop_connection(self, client: Any) -> None:
        """Close the client's TCP connection from the server side, mid-response.

        ASGI has no way to do that; closing uvicorn's transport lets the app return
        cleanly (uvicorn then sees a disconnect) instead of logging an aborted response.
        """
        assert self._server is not None
        for connection in list(self._server.server_state.connections):
            if connection.client == client:  # type: ignore[union-attr]
                connection.transport.close()
