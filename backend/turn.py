"""run_turn: one chat request as one OpenCode turn, told as a stream of TurnEvents.

This is the only way to get an answer out of OpenCode. It sends the prompt to a pooled session
of the gateway's workspace, follows that session on the shared event stream, and yields our own
small event types; OpenCode's wire format does not leave this module. Whatever ends the
iteration (finish, error, timeout, or the consumer going away) the turn is aborted if still
running and the session goes back to the pool (or is deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from opencode_openai.backend.events import LOST, RECONNECTED
from opencode_openai.backend.workspace import AGENT, STRUCTURED_OUTPUT
from opencode_openai.core.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
    UpstreamFailed,
)
from opencode_openai.core.events import (
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)
from opencode_openai.core.plan import TurnPlan

if TYPE_CHECKING:
    from opencode_openai.backend.instance import WorkspaceInstance
    from opencode_openai.backend.service import OpenCodeBackend
    from opencode_openai.backend.worker import OpenCodeWorker

__all__ = ["run_turn"]

log = logging.getLogger("opencode_openai.turn")

PLUGIN_KEY = "opencode-openai"
#: With no event for this long, read the session's messages: the event stream may be stalled.
SILENCE_S = 3.0


_FINISH = {"stop": "stop", "length": "length", "content-filter": "content_filter"}


def _usage(tokens: dict[str, Any] | None) -> Usage:
    tokens = tokens or {}
    cache = tokens.get("cache") or {}
    cached = int(cache.get("read") or 0)
    # OpenCode counts cached input apart from `input` and reasoning apart from `output`;
    # OpenAI's prompt_tokens and completion_tokens include them (seen on 1.18.33).
    prompt = int(tokens.get("input") or 0) + cached + int(cache.get("write") or 0)
    reasoning = int(tokens.get("reasoning") or 0)
    completion = int(tokens.get("output") or 0) + reasoning
    return Usage(prompt, completion, cached, reasoning)


def _error_from(error: dict[str, Any]) -> GatewayError:
    """OpenCode's `session.error` / `info.error` as one of our errors."""
    data = error.get("data") or {}
    message = str(data.get("message") or error.get("name") or "the model call failed")
    if error.get("name") == "MessageAbortedError":
        return BackendError("the OpenCode turn was aborted")
    status = data.get("statusCode")
    return UpstreamFailed(message, upstream_status=int(status) if status else None)


def _retry_failure(status: dict[str, Any]) -> UpstreamFailed:
    """OpenCode is about to retry a failed call (429, 5xx, unreachable): fail now instead.

    Its retry event carries the provider's message and when it would retry, not the status.
    """
    failure = UpstreamFailed(str(status.get("message") or "the provider failed"))
    retry_at = status.get("next")
    if isinstance(retry_at, (int, float)):
        seconds = max(1, round(retry_at / 1000 - time.time()))
        failure.headers["Retry-After"] = str(seconds)
    return failure


class _Turn:
    """Folds one session's OpenCode events into TurnEvents."""

    def __init__(self, structured: bool, tool_names: set[str]) -> None:
        self.structured = structured
        self.tool_names = tool_names
        self.calls: dict[str, tuple[int, bool]] = {}  # callID -> (index, arguments sent)
        self.assistant_ids: set[str] = set()
        self.part_kinds: dict[str, str] = {}
        self.sent: dict[str, int] = {}
        self.finish: str | None = None
        self.tokens: dict[str, Any] | None = None
        self.output: Any = None
        #: After events were lost, deltas no longer line up with what was sent: only whole
        #: snapshots of a part (which OpenCode sends when the part ends) are used from then on.
        self.snapshots_only = False

    def _text(self, part_id: str, text: str, *, whole: bool) -> list[TurnEvent]:
        kind = self.part_kinds.get(part_id)
        if kind not in ("text", "reasoning") or not text or (self.snapshots_only and not whole):
            return []
        if whole:  # a full snapshot: send only what the deltas have not sent yet
            text = text[self.sent.get(part_id, 0) :]
            if not text:
                return []
        self.sent[part_id] = self.sent.get(part_id, 0) + len(text)
        return [TextDelta(text) if kind == "text" else ReasoningDelta(text)]

    def fold(self, event: dict[str, Any]) -> list[TurnEvent]:
        kind = event.get("type")
        props = event.get("properties") or {}
        if kind == "message.updated":
            info = props.get("info") or {}
            if info.get("role") == "assistant":
                self.assistant_ids.add(info["id"])
                error = info.get("error")
                if error and error.get("name") != "ContentFilterError":
                    raise _error_from(error)
                if info.get("finish"):
                    self.finish = info["finish"]
                    self.tokens = info.get("tokens")
                if "structured" in info:
                    self.output = info["structured"]
        elif kind == "message.part.updated":
            part = props.get("part") or {}
            if part.get("messageID") not in self.assistant_ids:
                return []
            self.part_kinds.setdefault(part["id"], part.get("type", ""))
            if part.get("type") == "step-finish":
                self.finish = part.get("reason") or self.finish
                self.tokens = part.get("tokens") or self.tokens
            if part.get("type") in ("text", "reasoning"):
                return self._text(part["id"], part.get("text") or "", whole=True)
            if part.get("type") == "tool":
                return self._tool_call(part)
        elif kind == "message.part.delta":
            if props.get("field") == "text":
                return self._text(props.get("partID", ""), props.get("delta") or "", whole=False)
        elif kind == "session.error":
            error = props.get("error") or {}
            # A content filter is a finish reason in OpenAI's API, not an error.
            if error.get("name") != "ContentFilterError":
                raise _error_from(error)
        elif kind == "session.status":
            status = props.get("status") or {}
            if status.get("type") == "retry":
                raise _retry_failure(status)
        return []

    def _tool_call(self, part: dict[str, Any]) -> list[TurnEvent]:
        """A call of one of the client's tools, as OpenAI streams it: id and name, then arguments."""
        name, call_id = part.get("tool"), str(part.get("callID") or "")
        if name not in self.tool_names or name == STRUCTURED_OUTPUT:
            return []  # OpenCode's own tools and unknown names are never the client's business
        events: list[TurnEvent] = []
        index, sent = self.calls.get(call_id, (len(self.calls), False))
        if call_id not in self.calls:
            events.append(ToolCallDelta(index, id=call_id, name=name))
        state = part.get("state") or {}
        if not sent and state.get("status") != "pending":
            events.append(ToolCallDelta(index, arguments=json.dumps(state.get("input") or {})))
            sent = True
        self.calls[call_id] = (index, sent)
        return events

    @property
    def stopped_at_tool_call(self) -> bool:
        """The upstream asked for a tool (not OpenCode's own structured-output tool)."""
        return self.finish == "tool-calls" and not self.structured

    def finished(self) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        finish = _FINISH.get(self.finish or "stop", "stop")
        if self.calls:
            finish = "tool_calls"
        if self.structured:
            if self.output is None:
                raise UpstreamFailed("the model did not return the requested JSON output")
            events.append(TextDelta(json.dumps(self.output, ensure_ascii=False)))
            finish = "stop"
        events.append(TurnFinished(finish, _usage(self.tokens)))
        return events


def _prompt_body(plan: TurnPlan) -> dict[str, Any]:
    request = {"system": plan.system, "messages": plan.messages, "params": plan.params}
    last_text = next(
        (
            p.get("text", "")
            for m in reversed(plan.messages)
            if m["role"] == "user"
            for p in m["parts"]
            if p.get("type") == "text"
        ),
        "",
    )
    body: dict[str, Any] = {
        "agent": AGENT,
        "model": {"providerID": plan.model.provider_id, "modelID": plan.model.model_id},
        # The plugin rebuilds the whole conversation from the metadata; the part's own text
        # only makes the stored session readable.
        "parts": [{"type": "text", "text": last_text or " ", "metadata": {PLUGIN_KEY: request}}],
    }
    if plan.output_schema is not None:
        # retryCount 0: a retry would be a second upstream call.
        body["format"] = {"type": "json_schema", "schema": plan.output_schema, "retryCount": 0}
    return body


async def run_turn(
    backend: OpenCodeBackend, plan: TurnPlan, *, timeout_s: float
) -> AsyncIterator[TurnEvent]:
    deadline = time.monotonic() + timeout_s
    # Waiting for a worker and a slot may take half the request's time: the rest is the turn's.
    worker = await backend.pick(plan, timeout_s / 4)
    async with worker.limiter.slot(timeout_s / 4):
        try:
            async with contextlib.aclosing(_run(worker, plan, deadline, timeout_s)) as events:
                async for event in events:
                    yield event
        finally:
            worker.turn_done(backend.others_accepting(worker))


async def _next_event(queue: asyncio.Queue[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """The next event, waiting at most `timeout` (TimeoutError). Events mostly come in bursts:
    one already queued is taken without a timer (this runs ~20 times per turn)."""
    with contextlib.suppress(asyncio.QueueEmpty):
        return queue.get_nowait()
    async with asyncio.timeout(timeout):
        return await queue.get()


async def _recovered(
    instance: WorkspaceInstance, session_id: str, since_ms: float
) -> list[dict[str, Any]]:
    """The turn's state read from the session's messages, replayed as events.

    Used where events may have been lost (the stream broke or went silent). Snapshots never
    repeat text already sent: the fold only emits what its deltas have not.
    """
    events: list[dict[str, Any]] = []
    for message in await instance.client.messages(session_id):
        info = message.get("info") or {}
        if info.get("role") != "assistant" or (info.get("time") or {}).get("created", 0) < since_ms:
            continue
        events.append({"type": "message.updated", "properties": {"info": info}})
        events += [
            {"type": "message.part.updated", "properties": {"part": p}}
            for p in message.get("parts") or []
        ]
        if (info.get("time") or {}).get("completed"):
            events.append({"type": "session.idle", "properties": {}})
    return events


async def _alive(worker: OpenCodeWorker, instance: WorkspaceInstance) -> bool:
    """After the event stream broke: is OpenCode still there? (A dead one refuses at once.)"""
    if worker.process is not None and worker.process.exited():
        return False
    # Twice: the first try may land on a pooled connection that broke with the stream.
    for _ in range(2):
        try:
            await instance.client.health(timeout=2.0)
            return True
        except GatewayError:
            pass
    return False


async def _run(
    worker: OpenCodeWorker, plan: TurnPlan, deadline: float, timeout_s: float
) -> AsyncIterator[TurnEvent]:
    instance = await worker.instance_for(plan.tools)
    session_id = await instance.sessions.acquire()
    queue = instance.events.subscribe(session_id)
    clean = False
    try:
        # Our turn's messages are those OpenCode creates from now on (same clock: OpenCode must
        # run on this machine anyway); earlier turns of this pooled session are older.
        since_ms = time.time() * 1000
        await instance.client.prompt_async(session_id, _prompt_body(plan))
        turn = _Turn(plan.output_schema is not None, {t.name for t in plan.tools})
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackendTimeout(
                    f"the model did not finish within OPENAI_PROXY_TIMEOUT ({timeout_s:g} s)"
                )
            try:
                event = await _next_event(queue, min(remaining, SILENCE_S))
            except TimeoutError:
                batch = await _recovered(instance, session_id, since_ms)
            else:
                kind = event.get("type")
                if kind == LOST:
                    if not await _alive(worker, instance):
                        raise BackendUnavailable(
                            "OpenCode stopped during the request; retry shortly",
                            headers={"Retry-After": "2"},
                        )
                    continue
                if kind == RECONNECTED:
                    log.warning("event stream reconnected during session %s", session_id)
                    turn.snapshots_only = True
                    batch = await _recovered(instance, session_id, since_ms)
                else:
                    batch = [event]
            for event in batch:
                for out in turn.fold(event):
                    yield out
                if turn.stopped_at_tool_call:
                    # Stop here: nothing runs on the host and no second step (agent loop) may
                    # start. The plugin refuses a second model call as a backstop.
                    for out in turn.finished():
                        yield out
                    return
                if event.get("type") == "session.idle":
                    clean = True
                    for out in turn.finished():
                        yield out
                    return
    finally:
        instance.events.unsubscribe(session_id)
        instance.sessions.release(session_id, clean=clean)
